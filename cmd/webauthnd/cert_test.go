package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// readPEM returns the first PEM block of file.
func readPEM(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("no PEM block in %s", file)
	}
	return block.Bytes
}

// forgeChild uses the self-signed pair as an issuer, as someone who read key.pem would: a
// certificate for host, signed by the self-signed certificate's key.
func forgeChild(t *testing.T, certFile, keyFile, host string) (childDER []byte, pair tls.Certificate) {
	t.Helper()
	parent, err := x509.ParseCertificate(readPEM(t, certFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(readPEM(t, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{host},
	}
	// The child reuses the parent's key pair, so that it can be served as well as verified.
	childDER, err = x509.CreateCertificate(rand.Reader, tmpl, parent, parent.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return childDER, tls.Certificate{Certificate: [][]byte{childDER, parent.Raw}, PrivateKey: key}
}

// TestSelfSignedIsALeaf: `cert self-signed` issues a server certificate for the hosts given,
// which clients trust directly, and which cannot issue certificates: whoever reads key.pem
// cannot mint a certificate, for these hosts or any other, that a client trusting cert.pem
// accepts.
func TestSelfSignedIsALeaf(t *testing.T) {
	certFile, keyFile := selfSigned(t, t.TempDir())
	cert, err := x509.ParseCertificate(readPEM(t, certFile))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(certFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cert.pem: %v, mode %v; want 0600", err, st.Mode())
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Errorf("basic constraints valid=%v CA=%v; want a leaf (CA:FALSE)", cert.BasicConstraintsValid, cert.IsCA)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %b; want digitalSignature alone (no certSign)", cert.KeyUsage)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("extended key usage %v; want serverAuth", cert.ExtKeyUsage)
	}
	if !slices.Equal(cert.DNSNames, []string{"localhost"}) || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("SANs %v %v; want localhost and 127.0.0.1", cert.DNSNames, cert.IPAddresses)
	}

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("a client trusting cert.pem refuses it for %s: %v", host, err)
		}
	}
	for _, host := range []string{"bank.example", "localhost"} {
		der, _ := forgeChild(t, certFile, keyFile, host)
		child, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := child.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err == nil {
			t.Errorf("a certificate for %s signed with key.pem verifies against cert.pem", host)
		}
	}
}

// TestSelfSignedTrustedByNode is the README's setup, NODE_EXTRA_CA_CERTS=cert.pem: Node (its
// OpenSSL) accepts the server's certificate, and refuses a certificate signed with its key.
func TestSelfSignedTrustedByNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH (make test-deps installs it for the browser test)")
	}
	certFile, keyFile := selfSigned(t, t.TempDir())
	_, forged := forgeChild(t, certFile, keyFile, "localhost")
	genuine, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		served tls.Certificate
		want   string
	}{
		{"the self-signed certificate is trusted", genuine, "200"},
		{"a certificate signed with its key is refused", forged, "ERR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.served}}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // node's refused handshake
			srv.StartTLS()
			defer srv.Close()
			url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "-e", `require("https").get(process.argv[1], r => { console.log(r.statusCode); process.exit(0) }).on("error", e => { console.log("ERR", e.code, e.message); process.exit(0) })`, url)
			cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+certFile)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node: %v %s", err, out)
			}
			if !strings.HasPrefix(string(out), tc.want) {
				t.Fatalf("node answered %q, want %s", out, tc.want)
			}
			t.Logf("node: %s", out)
		})
	}
}
