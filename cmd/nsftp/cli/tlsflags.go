package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/nsftp/nsftp/ftp"
)

// tlsFlags are the FTPS options of get, put and ls, named as curl names
// them.
type tlsFlags struct {
	try         bool
	required    bool
	controlOnly bool
	cacert      string
	insecure    bool
}

func (tf *tlsFlags) register(fs *flagSet) {
	fs.group("FTPS (TLS)")
	fs.boolVar(&tf.try, "ssl", false, "use TLS if the server offers it (AUTH TLS), in clear otherwise")
	fs.boolVar(&tf.required, "ssl-reqd", false, "require TLS: stop, before USER and PASS are sent, if the server will not")
	fs.boolVar(&tf.controlOnly, "ssl-control", false, "protect only the control connection (the password); data in clear (PROT C)")
	fs.stringVar(&tf.cacert, "cacert", "", "verify the server's certificate against the CAs in `FILE` (PEM) instead of the system's")
	fs.boolVar(&tf.insecure, "insecure", false, "do not verify the server's certificate (anyone on the path could read the session)")
}

// validate checks what it can without the URL; client checks the rest.
func (tf *tlsFlags) validate() error {
	if tf.cacert != "" && tf.insecure {
		return usagef("--cacert and --insecure are mutually exclusive")
	}
	return nil
}

// client returns the client's TLS mode and configuration for URL u: an
// ftps:// URL is implicit TLS; --ssl-reqd and --ssl-control require AUTH
// TLS, --ssl tries it.
func (tf *tlsFlags) client(e *env, u *ftp.URL) (ftp.TLSMode, *tls.Config, error) {
	mode := ftp.TLSOff
	switch {
	case u.Scheme == "ftps":
		mode = ftp.TLSImplicit
	case tf.required || tf.controlOnly:
		mode = ftp.TLSRequire
	case tf.try:
		mode = ftp.TLSTry
	}
	if mode == ftp.TLSOff {
		if tf.cacert != "" || tf.insecure {
			return 0, nil, usagef("--cacert and --insecure apply with --ssl, --ssl-reqd, --ssl-control or an ftps:// URL")
		}
		return mode, nil, nil
	}
	cfg := &tls.Config{ServerName: u.Host, MinVersion: tls.VersionTLS12}
	if tf.cacert != "" {
		pem, err := os.ReadFile(tf.cacert)
		if err != nil {
			return 0, nil, &fileError{fmt.Errorf("--cacert: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return 0, nil, usagef("--cacert %s holds no PEM certificate", tf.cacert)
		}
		cfg.RootCAs = pool
	}
	if tf.insecure {
		cfg.InsecureSkipVerify = true
		fmt.Fprintln(e.stderr, "nsftp: warning: --insecure: the server's certificate is not verified; anyone on the path can pose as the server and read the session")
	}
	return mode, cfg, nil
}

// serveTLS loads the server's certificate and key for nsftp serve.
func serveTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, &setupError{fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
