package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// certReloader serves a certificate pair that it reloads when either file changes, so a
// renewed certificate takes effect without a restart or a dropped connection. Open
// connections keep the certificate of their handshake.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // modification times and sizes of both files
	checkedAt time.Time
}

// newCertReloader loads the pair once; an unreadable or mismatched pair is an error that names
// the files.
func newCertReloader(certFile, keyFile string, log *zap.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS file %s: %w", f, err)
		}
		stamp += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return stamp, nil
}

func (r *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// getCertificate is tls.Config.GetCertificate. It looks at the files at most once a second;
// a pair that fails to load keeps the previous one in service (and is logged).
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checkedAt) >= time.Second {
		r.checkedAt = time.Now()
		if stamp, err := r.fileStamp(); err != nil {
			r.log.Warn("TLS files unreadable; keeping the loaded certificate", zap.Error(err))
		} else if stamp != r.stamp {
			if err := r.load(stamp); err != nil {
				r.log.Warn("TLS pair did not load; keeping the previous certificate", zap.Error(err))
			} else {
				r.log.Info("TLS certificate reloaded", zap.String("cert", r.certFile))
			}
		}
	}
	return r.cert, nil
}

// tlsConfig is Go's defaults (TLS 1.2 minimum) with the reloading certificate.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}

// certCommand implements `webauthnd cert self-signed`: a self-signed leaf certificate (CA:FALSE,
// digitalSignature, serverAuth) for the hosts given, which clients are told to trust directly.
func certCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "self-signed" {
		return errors.New("cert: want self-signed")
	}
	var (
		hosts listFlag
		out   string
		valid time.Duration
	)
	fs := flag.NewFlagSet("cert self-signed", flag.ContinueOnError)
	fs.Var(&hosts, "host", "a host name or IP address the certificate is for (repeatable)")
	fs.StringVar(&out, "out", ".", "directory for cert.pem and key.pem")
	fs.DurationVar(&valid, "valid-for", 90*24*time.Hour, "validity")
	if err := parseFlags(fs, args[1:], getenv, stderr); err != nil {
		return err
	}
	if len(hosts) == 0 {
		return errors.New("cert self-signed: give at least one --host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"webauthnd self-signed"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(valid),
		// A leaf, not a CA: clients that trust this file (NODE_EXTRA_CA_CERTS, a RootCAs
		// pool, curl --cacert) accept it as its own anchor all the same, and its key, which
		// sits next to the server, cannot issue certificates for other names that they would
		// then trust too.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem")
	if err := writeFileSynced(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return err
	}
	if err := writeFileSynced(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (for %v, valid until %s)\n", certPath, keyPath, []string(hosts), tmpl.NotAfter.Format(time.DateOnly))
	return nil
}
