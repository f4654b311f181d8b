package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/persistence"
)

type serviceKeys struct {
	signing  *ecdsa.PrivateKey
	envelope *httpapi.EnvelopeKey
	decoy    []byte
}

// secret returns the stored secret name, generating and storing it first if absent.
func secret(store *persistence.Store, name string, generate func() ([]byte, error)) ([]byte, error) {
	if v, err := store.Secret(name); err == nil {
		return v, nil
	}
	fresh, err := generate()
	if err != nil {
		return nil, err
	}
	v, err := store.ApplyOne(persistence.PutSecretIfAbsent{Name: name, Value: fresh})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return v.([]byte), nil
}

// loadKeys loads the service's keys, generating each on first start. They live only in the
// store (never in logs or files).
func loadKeys(store *persistence.Store) (serviceKeys, error) {
	var k serviceKeys
	der, err := secret(store, "token-signing-key", func() ([]byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(key)
	})
	if err != nil {
		return k, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return k, fmt.Errorf("token signing key: %w", err)
	}
	var ok bool
	if k.signing, ok = parsed.(*ecdsa.PrivateKey); !ok {
		return k, fmt.Errorf("token signing key is not an ECDSA key")
	}
	raw, err := secret(store, "envelope-key", func() ([]byte, error) {
		key, err := httpapi.NewEnvelopeKey()
		if err != nil {
			return nil, err
		}
		return key.Bytes(), nil
	})
	if err != nil {
		return k, err
	}
	if k.envelope, err = httpapi.ParseEnvelopeKey(raw); err != nil {
		return k, err
	}
	k.decoy, err = secret(store, "decoy-secret", func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	return k, err
}

// bootstrap gives an empty store the embedded default: tenant and community "default" and a
// community license whose key goes to <data-dir>/default-license.key (mode 0600). The key is
// printed only to a terminal; otherwise the file's path is.
func bootstrap(store *persistence.Store, community persistence.Community, dataDir string, stdout io.Writer, publicURL string) error {
	empty, err := store.Empty()
	if err != nil || !empty {
		return err
	}
	lic, key, err := persistence.NewLicense(persistence.LevelCommunity, community.ID, "", 0)
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, "default-license.key")
	// The file first: a crash before the store commit leaves an empty store, which the next
	// start bootstraps again, overwriting the file.
	if err := writeFileSynced(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the default license key: %w", err)
	}
	results := store.Apply([]persistence.Op{
		// The default tenant's host name is the public URL's, so BlockID SDKs find it by dns.
		persistence.PutCommunity{Community: community, Create: true, TenantDNS: []string{hostOf(publicURL)}},
		persistence.PutLicense{License: lic},
	})
	for _, r := range results {
		if r.Err != nil {
			return fmt.Errorf("create the default community: %w", r.Err)
		}
	}
	if isTerminal(stdout) {
		fmt.Fprintf(stdout, "created community %q with license key %s (also in %s)\n", community.ID, key, path)
	} else {
		fmt.Fprintf(stdout, "created community %q; its license key is in %s\n", community.ID, path)
	}
	return nil
}

func writeFileSynced(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
