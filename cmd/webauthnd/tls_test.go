package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
)

// selfSigned runs `webauthnd cert self-signed` into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"cert", "self-signed", "--host", "localhost", "--host", "127.0.0.1", "--out", dir},
		func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatalf("cert self-signed: %v %s", err, errOut.String())
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v, mode %v; want 0600", err, st.Mode())
	}
	return certFile, keyFile
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHTTPS starts a server with a fresh self-signed certificate on a known port, its public
// URL https://localhost:<port>.
func startHTTPS(t *testing.T) (*testServer, int, string) {
	t.Helper()
	certFile, keyFile := selfSigned(t, t.TempDir())
	port := freePort(t)
	s := startServer(t, "", "--addr", "127.0.0.1:"+strconv.Itoa(port), "--tls-cert", certFile, "--tls-key", keyFile,
		"--public-url", "https://localhost:"+strconv.Itoa(port))
	return s, port, certFile
}

// TestBlockIDSDKDiscoveryOverHTTPS plays a BlockID SDK from its published behaviour
// (nodejs-helper-files BIDTenant.js and BIDWebAuthn.js): it knows only the tenant's dns, a
// community name and a license key, and finds everything else by discovery.
func TestBlockIDSDKDiscoveryOverHTTPS(t *testing.T) {
	s, port, _ := startHTTPS(t)
	dns := "localhost:" + strconv.Itoa(port)

	status, sd, hdr := s.call(t, "GET", "https://"+dns+"/caas/sd", nil, nil)
	if status != 200 || sd["licenses"] == nil || sd["webauthn"] != "https://"+dns+"/webauthn" {
		t.Fatalf("/caas/sd: %d %v", status, sd)
	}
	if !strings.HasPrefix(hdr.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("no Strict-Transport-Security on an HTTPS response: %v", hdr)
	}
	_, webauthnSD, _ := s.call(t, "GET", "/webauthn/sd", nil, nil)
	for k, v := range webauthnSD {
		if sd[k] != v {
			t.Errorf("/caas/sd %s = %v, /webauthn/sd has %v", k, sd[k], v)
		}
	}

	status, info, _ := s.call(t, "POST", "https://"+dns+"/api/r1/system/community_info/fetch", nil,
		map[string]string{"dns": dns, "communityName": "default"})
	if status != 200 {
		t.Fatalf("community_info/fetch: %d %v", status, info)
	}
	tenant, community := info["tenant"].(map[string]any), info["community"].(map[string]any)
	_, keys, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	if tenant["id"] != "default" || tenant["dns"] != "localhost" || community["id"] != "default" || community["publicKey"] != keys["publicKey"] {
		t.Fatalf("community_info = %v", info)
	}

	// The SDK merges communityId and tenantId into every request and calls sd.webauthn.
	base := sd["webauthn"].(string)
	merge := func(m map[string]any) map[string]any {
		m["communityId"], m["tenantId"] = community["id"], tenant["id"]
		return m
	}
	headers := map[string]string{"licensekey": s.License, "requestid": "7d444840-9dc0-11d1-b245-5ffdce74fad2"}
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "default", Origin: "https://" + dns}
	p := newPasskey(rp, "ada")

	status, body, _ := s.call(t, "POST", base+"/u1/attestation/options", headers,
		merge(map[string]any{"dns": "localhost", "username": "ada", "displayName": "Ada", "attestation": "none"}))
	if status != 200 {
		t.Fatalf("attestation/options: %d %v", status, body)
	}
	raw, _ := json.Marshal(body["data"])
	aopts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ = s.call(t, "POST", base+"/u1/attestation/result", headers,
		merge(ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(rp, p.auth, p.cred, *aopts), "localhost", "")))
	if status != 200 || body["data"].(map[string]any)["sub"] != "ada" {
		t.Fatalf("attestation/result: %d %v", status, body)
	}
	p.auth.Options.UserHandle = []byte(aopts.UserID)
	p.auth.AddCredential(p.cred)

	status, body, _ = s.call(t, "POST", base+"/u1/assertion/options", headers, merge(map[string]any{"dns": "localhost", "username": "ada"}))
	if status != 200 {
		t.Fatalf("assertion/options: %d %v", status, body)
	}
	raw, _ = json.Marshal(body)
	sopts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	p.cred.Counter++
	status, body, _ = s.call(t, "POST", base+"/u1/assertion/result", headers,
		merge(ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(rp, p.auth, p.cred, *sopts), "localhost", "")))
	if status != 200 || body["data"].(map[string]any)["sub"] != "ada" || body["signature_token"] == "" {
		t.Fatalf("assertion/result: %d %v", status, body)
	}
}

func TestDiscoveryBadInput(t *testing.T) {
	s := startServer(t, "")
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--name", "Shop", "--rp-id", "shop.localhost",
		"--origin", "https://shop.localhost", "--tenant-dns", "Shop.Example.com")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"community", "create", "--id", "rival", "--tenant", "rivals", "--rp-id", "rival.localhost",
		"--origin", "https://rival.localhost", "--tenant-dns", "shop.example.com", "--data-dir", s.DataDir}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "another tenant") {
		t.Fatalf("a host of another tenant was not refused: %v", err)
	}

	cases := []struct {
		name   string
		body   any
		status int
		code   string
		tenant string
	}{
		{"tenant by host, any case, port ignored", map[string]string{"dns": "SHOP.example.com:8443", "communityName": "Shop"}, 200, "", "acme"},
		{"tenant by id, community by id", map[string]string{"tenantId": "acme", "communityId": "shop"}, 200, "", "acme"},
		{"default tenant by the public URL's host", map[string]string{"dns": "localhost:8080", "communityId": "default"}, 200, "", "default"},
		{"unknown tenant host", map[string]string{"dns": "nowhere.example", "communityName": "Shop"}, 404, "not_found", ""},
		{"unknown community name", map[string]string{"dns": "shop.example.com", "communityName": "Nope"}, 404, "not_found", ""},
		{"community of another tenant", map[string]string{"dns": "shop.example.com", "communityId": "default"}, 404, "not_found", ""},
		{"a host that was refused stays unowned", map[string]string{"dns": "rival.localhost", "communityName": "rival"}, 404, "not_found", ""},
		{"neither tenant nor dns", map[string]string{"communityName": "Shop"}, 400, "invalid_request", ""},
		{"neither community id nor name", map[string]string{"dns": "shop.example.com"}, 400, "invalid_request", ""},
		{"malformed JSON", `{"dns":`, 400, "invalid_request", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := s.call(t, "POST", "/api/r1/system/community_info/fetch", nil, tc.body)
			if status != tc.status {
				t.Fatalf("got %d %v, want %d", status, body, tc.status)
			}
			if tc.code != "" && body["code"] != tc.code {
				t.Fatalf("code %v, want %s", body["code"], tc.code)
			}
			if tc.tenant != "" && body["tenant"].(map[string]any)["id"] != tc.tenant {
				t.Fatalf("tenant %v, want %s", body["tenant"], tc.tenant)
			}
		})
	}
}

func TestHTTPToTheHTTPSPort(t *testing.T) {
	_, port, _ := startHTTPS(t)
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/webauthn/healthz")
	if err != nil {
		t.Fatalf("plain HTTP to the HTTPS port: %v (want a quick 400)", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the HTTPS port answered %d, want 400", res.StatusCode)
	}
}

func TestTLSFilesRefusedAtStart(t *testing.T) {
	certA, keyA := selfSigned(t, t.TempDir())
	_, keyB := selfSigned(t, t.TempDir())
	missing := filepath.Join(t.TempDir(), "missing.pem")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, cert, key, mention string
	}{
		{"missing certificate", missing, keyA, missing},
		{"missing key", certA, missing, missing},
		{"unreadable certificate", garbage, keyA, garbage},
		{"key of another certificate", certA, keyB, keyB},
		{"key without certificate", "", keyA, "--tls-cert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--tls-key", tc.key}
			if tc.cert != "" {
				args = append(args, "--tls-cert", tc.cert)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, args, func(string) string { return "" }, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("serve: %v, want an error naming %s", err, tc.mention)
			}
		})
	}
}

// TestCertificateReload replaces the files under a running server: new connections get the new
// certificate, an open keep-alive connection keeps working.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	s := startServer(t, "", "--tls-cert", certFile, "--tls-key", keyFile)
	oldPEM, _ := os.ReadFile(certFile)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(oldPEM)
	newClient := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	peer := func(c *http.Client) (serial string, reused bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/webauthn/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		}))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body) // a drained body lets the connection be reused
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("healthz %d", res.StatusCode)
		}
		return res.TLS.PeerCertificates[0].SerialNumber.String(), reused
	}
	keepAlive := newClient()
	oldSerial, _ := peer(keepAlive)

	time.Sleep(1100 * time.Millisecond) // the reloader looks at most once a second
	selfSigned(t, dir)
	newPEM, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(newPEM)
	time.Sleep(1100 * time.Millisecond)

	newSerial, _ := peer(newClient())
	if newSerial == oldSerial {
		t.Fatal("a new connection still gets the old certificate")
	}
	serial, reused := peer(keepAlive)
	if !reused || serial != oldSerial {
		t.Fatalf("the open connection was not kept (reused=%v, serial changed=%v)", reused, serial != oldSerial)
	}
}
