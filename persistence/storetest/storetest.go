package storetest

import (
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
)

// Run runs the contract suite of persistence.Store against the backend that open opens. open
// returns a new, empty store for the test it is given and registers with t.Cleanup what closes
// it (and removes its storage); the suite never closes a store. Every subtest opens its own.
func Run(t *testing.T, open func(t *testing.T) persistence.Store) {
	for _, g := range []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"PutTenant", testPutTenant},
		{"TenantReads", testTenantReads},
		{"PutCommunity", testPutCommunity},
		{"PatchCommunity", testPatchCommunity},
		{"CommunityReads", testCommunityReads},
		{"PutLicense", testPutLicense},
		{"RevokeLicense", testRevokeLicense},
		{"LicenseReads", testLicenseReads},
		{"PutSecretIfAbsent", testPutSecretIfAbsent},
		{"RotateKey", testRotateKey},
		{"RememberRequest", testRememberRequest},
		{"AddCredential", testAddCredential},
		{"CredentialReads", testCredentialReads},
		{"RecordSignIn", testRecordSignIn},
		{"LinkCredential", testLinkCredential},
		{"RemoveCredentials", testRemoveCredentials},
		{"PutVendorMetadata", testPutVendorMetadata},
		{"PatchVendorMetadata", testPatchVendorMetadata},
		{"VendorReads", testVendorReads},
		{"MDS", testMDS},
		{"CommonShape", testCommonShape},
		{"SignInSubject", testSignInSubject},
		{"Batch", testBatch},
		{"Generations", testGenerations},
		{"Caches", testCaches},
		{"Import", testImport},
		{"PasskeysOf", testPasskeysOf},
		{"PasskeyLookups", testPasskeyLookups},
		{"Store", testStore},
		{"Context", testContext},
		{"Concurrency", testConcurrency},
	} {
		t.Run(g.name, func(t *testing.T) { g.run(t, open) })
	}
}
