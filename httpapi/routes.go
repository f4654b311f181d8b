package httpapi

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/webauthnd/webauthnd/messages"
)

// routes lists every endpoint of the service. Public routes need no license and ignore one.
// api is the service's whole handler, which the demo calls in-process.
func routes(d Deps, api http.Handler) http.Handler {
	lc := licenseChecker{licenses: d.Licenses, communities: d.Communities, now: time.Now, audit: d.Audit}
	log := d.Log
	r := labelledRouter{httprouter.New(), d.Metrics}
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = false // no CORS: relying parties call webauthnd from their backends
	// No redirect to a "fixed" path: httprouter would clean /user/bob/../../did_or_fidokey/X
	// into the community-wide route and send the client there (308, method and headers kept),
	// so a request that named a user would remove another's passkey. A path that matches no
	// route is 404.
	r.RedirectFixedPath = false

	r.Handler(http.MethodGet, "/webauthn/healthz", handleHealthz(d.Health, d.Draining, d.Config.Version, healthCheckTimeout, log))
	r.Handler(http.MethodGet, "/webauthn/environment", handleEnvironment(d.Config, d.Envelope))
	r.Handler(http.MethodGet, "/webauthn/publickeys", handlePublicKeys(d.Envelope, d.TokenKeys))
	r.Handler(http.MethodGet, "/webauthn/sd", handleDirectory(d.Config))
	r.Handler(http.MethodGet, "/webauthn/openapi.json", handleOpenAPI())

	// BlockID SDK discovery, outside /webauthn as in the original service; public.
	r.Handler(http.MethodGet, "/caas/sd", handleDirectory(d.Config))
	r.Handler(http.MethodPost, "/api/r1/system/community_info/fetch", handleCommunityInfo(d.Communities, d.Envelope, log))

	r.Handler(http.MethodPost, "/webauthn/u1/attestation/options", handleAttestationOptions(lc, d.Ceremonies, d.Envelope, log))
	r.Handler(http.MethodPost, "/webauthn/u1/attestation/result", handleAttestationResult(lc, d.Ceremonies, log))
	r.Handler(http.MethodPost, "/webauthn/u1/assertion/options", handleAssertionOptions(lc, d.Ceremonies, log))
	r.Handler(http.MethodPost, "/webauthn/u1/assertion/result", handleAssertionResult(lc, d.Ceremonies, log))

	// The same ceremonies behind BlockID's envelope (see sealed.go): encrypted headers and body.
	seal := func(h http.Handler) http.Handler {
		return sealed(d.Envelope, lc, d.Replays, d.Config.AllowedTimeSpan, time.Now, log, h)
	}
	r.Handler(http.MethodPost, "/webauthn/attestation/options", seal(handleAttestationOptions(lc, d.Ceremonies, d.Envelope, log)))
	r.Handler(http.MethodPost, "/webauthn/attestation/result", seal(handleAttestationResult(lc, d.Ceremonies, log)))
	r.Handler(http.MethodPost, "/webauthn/assertion/options", seal(handleAssertionOptions(lc, d.Ceremonies, log)))
	r.Handler(http.MethodPost, "/webauthn/assertion/result", seal(handleAssertionResult(lc, d.Ceremonies, log)))

	// A user's passkeys: their link status, links to DIDs, de-registration (links.go); u1 with a
	// licensekey, and sealed. Path parameters are matched percent-encoded (a '/' inside a DID
	// stays in its parameter) and unescaped by the handlers.
	r.Handler(http.MethodGet, "/webauthn/u1/link/community/:communityId/user/:userId/status", handleLinkStatus(lc, d.Passkeys, log))
	r.Handler(http.MethodPut, "/webauthn/u1/link/community/:communityId/did/:did/user/:userId/fidokey/:fidoKeyHash", handleLink(lc, d.Passkeys, true, log))
	r.Handler(http.MethodDelete, "/webauthn/u1/link/community/:communityId/did/:did/user/:userId/fidokey/:fidoKeyHash", handleLink(lc, d.Passkeys, false, log))
	r.Handler(http.MethodDelete, "/webauthn/u1/unregister/community/:communityId/did_or_fidokey/:identifier", handleUnregister(lc, d.Passkeys, false, log))
	r.Handler(http.MethodDelete, "/webauthn/u1/unregister/community/:communityId/user/:userId/did_or_fidokey/:identifier", handleUnregister(lc, d.Passkeys, true, log))
	r.Handler(http.MethodGet, "/webauthn/link/community/:communityId/user/:userId/status", seal(handleLinkStatus(lc, d.Passkeys, log)))
	r.Handler(http.MethodPut, "/webauthn/link/community/:communityId/did/:did/user/:userId/fidokey/:fidoKeyHash", seal(handleLink(lc, d.Passkeys, true, log)))
	r.Handler(http.MethodDelete, "/webauthn/link/community/:communityId/did/:did/user/:userId/fidokey/:fidoKeyHash", seal(handleLink(lc, d.Passkeys, false, log)))
	r.Handler(http.MethodDelete, "/webauthn/unregister/community/:communityId/did_or_fidokey/:identifier", seal(handleUnregister(lc, d.Passkeys, false, log)))
	r.Handler(http.MethodDelete, "/webauthn/unregister/community/:communityId/user/:userId/did_or_fidokey/:identifier", seal(handleUnregister(lc, d.Passkeys, true, log)))

	// Vendor metadata records (vendor.go): bodies of up to 1 MiB, for statements of 256 KiB.
	vendor := func(h http.Handler) http.Handler { return bodyUpTo(vendorBodyLimit, h) }
	r.Handler(http.MethodPut, "/webauthn/vendormetadata/:communityId", vendor(handlePutVendorMetadata(lc, d.Vendor, log)))
	r.Handler(http.MethodPatch, "/webauthn/vendormetadata/:communityId/aaguid/:aaguid", vendor(handlePatchVendorMetadata(lc, d.Vendor, log)))
	r.Handler(http.MethodPost, "/webauthn/vendormetadata/:communityId/fetch", vendor(handleFetchVendorMetadata(lc, d.Vendor, log)))

	if d.Demo != nil {
		demoRoutes(r, newDemo(*d.Demo, api, d))
	}

	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, log, messages.Errorf(messages.CodeNotFound, "no such route"))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		markMethodNotAllowed(w)
		writeError(w, log, messages.Errorf(messages.CodeMethodNotAllowed, "method not allowed on this route"))
	})
	r.PanicHandler = func(w http.ResponseWriter, _ *http.Request, v any) {
		log.Error("handler panicked", zapAny(v))
		writeError(w, log, messages.Errorf(messages.CodeInternal, "internal error"))
	}
	return routeOnEscapedPath(r.Router)
}

// labelledRouter registers each route with its pattern as the route label of its metrics
// (metrics.go): httprouter does not tell a handler which pattern matched, and the raw path
// would put usernames, DIDs and credential ids in labels. Without metrics it registers the
// handler as it is.
type labelledRouter struct {
	*httprouter.Router
	metrics *Metrics
}

// Handler registers h for method and path, labelled with path.
func (r labelledRouter) Handler(method, path string, h http.Handler) {
	r.Router.Handler(method, path, r.metrics.labelled(method, path, h))
}

// demoRoutes lists the passkey demo's routes (demo.go): its page at / and its backend under
// /demo/. They are a relying party's, not the service's API: the OpenAPI document leaves them
// out, and none may lie under /webauthn/ or /caas/ or /api/ (openapi_test.go checks both).
// httprouter cannot mix a catch-all at / with the API's routes, so each file has its path.
func demoRoutes(r labelledRouter, dm *demo) {
	r.Handler(http.MethodGet, "/", dm.page(false, handleDemoFile("index.html")))
	r.Handler(http.MethodGet, "/demo/demo.js", dm.page(false, handleDemoFile("demo.js")))
	r.Handler(http.MethodGet, "/demo/demo.css", dm.page(false, handleDemoFile("demo.css")))
	r.Handler(http.MethodGet, "/demo/icon.svg", dm.page(false, handleDemoFile("icon.svg")))
	r.Handler(http.MethodGet, "/demo/api/session", dm.page(false, handleDemoSession(dm)))
	r.Handler(http.MethodPost, "/demo/api/signup/options", dm.page(true, handleDemoSignUpOptions(dm)))
	r.Handler(http.MethodPost, "/demo/api/signup/result", dm.page(true, handleDemoSignUpResult(dm)))
	r.Handler(http.MethodPost, "/demo/api/signin/options", dm.page(true, handleDemoSignInOptions(dm)))
	r.Handler(http.MethodPost, "/demo/api/signin/result", dm.page(true, handleDemoSignInResult(dm)))
	r.Handler(http.MethodPost, "/demo/api/passkeys/options", dm.page(true, handleDemoAddOptions(dm)))
	r.Handler(http.MethodPost, "/demo/api/passkeys/result", dm.page(true, handleDemoAddResult(dm)))
	r.Handler(http.MethodDelete, "/demo/api/passkeys/:fidoKeyHash", dm.page(true, handleDemoDeletePasskey(dm)))
	r.Handler(http.MethodPost, "/demo/api/signout", dm.page(true, handleDemoSignOut(dm)))
}

// adminRoutes lists the management API served only on the data directory's Unix socket.
func adminRoutes(a AdminDeps) http.Handler {
	r := httprouter.New()
	r.Handler(http.MethodPost, "/admin/communities", handleWrite[AdminCommunity](a))
	r.Handler(http.MethodPatch, "/admin/communities", handleWrite[AdminCommunityPatch](a))
	r.Handler(http.MethodPost, "/admin/licenses", handleWrite[AdminLicense](a))
	r.Handler(http.MethodGet, "/admin/licenses", handleListLicenses(a))
	r.Handler(http.MethodPost, "/admin/licenses/revoke", handleWrite[AdminRevokeLicense](a))
	r.Handler(http.MethodPost, "/admin/keys/rotate", handleRotateKeys(a))
	r.Handler(http.MethodGet, "/admin/backup", handleBackup(a))
	r.Handler(http.MethodGet, "/admin/stats", handleStats(a))
	// Go's profiles (pprof.go): only here, on the socket; symbol lookups are also POSTs.
	r.Handler(http.MethodGet, PprofPath+"*name", handlePprof(a))
	r.Handler(http.MethodPost, PprofPath+"*name", handlePprof(a))
	r.Handler(http.MethodPost, AdminMetadataImportPath, handleImportMetadata(a))
	r.Handler(http.MethodGet, "/admin/metadata", handleListMetadata(a))
	r.Handler(http.MethodGet, AdminPasskeysExportPath, handleExportPasskeys(a))
	r.Handler(http.MethodPost, AdminPasskeysImportPath, handleImportPasskeys(a))
	r.Handler(http.MethodPost, AdminPasskeysImportedPath, handlePasskeysImported(a))
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, a.Log, messages.Errorf(messages.CodeNotFound, "no such route"))
	})
	return r
}
