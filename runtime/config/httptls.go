package config

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// HTTPTLS serves an instance's HTTP API (queries, app routes, /healthz,
// /readyz, /metrics) over HTTPS, and makes it forward queries to other
// instances over HTTPS. It is on when CertFile is set; every instance of an
// app must then set it, since they forward to each other.
//
// The instance's certificate must name the address it advertises (its IP
// address or host name), since other instances verify it against CAFile
// when they forward; with ClientCAFile it is also the client certificate
// the instance presents when it forwards, so it must allow client
// authentication too (an extended key usage of both serverAuth and
// clientAuth, or none).
type HTTPTLS struct {
	// CertFile and KeyFile are the instance's certificate chain and key,
	// PEM.
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ClientCAFile, when set, makes the query API and the app's routes
	// require a client certificate signed by one of its CAs (401 without
	// one); /healthz, /readyz and /metrics stay open to probes and
	// scrapers without one, as they stay open without query.tokens.
	ClientCAFile string `koanf:"client_ca_file"`
	// CAFile holds the CAs trusted to sign other instances' certificates
	// when forwarding; none: the system roots.
	CAFile string `koanf:"ca_file"`
}

var httpTLSKeys = []string{"cert_file", "key_file", "client_ca_file", "ca_file"}

// Enabled reports whether the API is served over HTTPS.
func (h *HTTPTLS) Enabled() bool { return h.CertFile != "" }

// ServerConfig returns the TLS configuration the HTTP server listens with,
// its files read and checked now. A client certificate is verified when
// one is given (VerifyClientCertIfGiven), so that probes without one still
// reach /healthz; the API checks that one was given (RequireClientCert).
func (h *HTTPTLS) ServerConfig() (*tls.Config, error) {
	cert, err := loadKeyPair("cert_file", h.CertFile, "key_file", h.KeyFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	if h.ClientCAFile != "" {
		pool, err := loadCAs("client_ca_file", h.ClientCAFile)
		if err != nil {
			return nil, err
		}
		c.ClientAuth, c.ClientCAs = tls.VerifyClientCertIfGiven, pool
	}
	return c, nil
}

// RequireClientCert reports whether the API answers only requests with a
// verified client certificate.
func (h *HTTPTLS) RequireClientCert() bool { return h.ClientCAFile != "" }

// ClientConfig returns the TLS configuration for forwarding to other
// instances: their certificates verified against CAFile (or the system
// roots), and this instance's certificate presented as its own.
func (h *HTTPTLS) ClientConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.CAFile != "" {
		pool, err := loadCAs("ca_file", h.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	cert, err := loadKeyPair("cert_file", h.CertFile, "key_file", h.KeyFile)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}

func (d decoder) httpTLS(m map[string]any, path string, h *HTTPTLS) {
	d.unknown(m, path, httpTLSKeys)
	h.CertFile = d.str(m, path, "cert_file", "")
	h.KeyFile = d.str(m, path, "key_file", "")
	h.ClientCAFile = d.str(m, path, "client_ca_file", "")
	h.CAFile = d.str(m, path, "ca_file", "")
}

func resolveHTTPTLS(h *HTTPTLS, path, fileDir string, sources map[string]string) {
	for key, p := range map[string]*string{"cert_file": &h.CertFile, "key_file": &h.KeyFile, "client_ca_file": &h.ClientCAFile, "ca_file": &h.CAFile} {
		if *p == "" {
			continue
		}
		base := fileDir
		if _, ok := sources[path+"."+key]; ok {
			base = "."
		}
		*p = absPath(base, *p)
	}
}

// validateHTTPTLS checks an http_tls section at path: its files exist and
// parse, the key matches the certificate, and the CAs are used only with a
// certificate.
func validateHTTPTLS(p *problems, path string, h *HTTPTLS) {
	if h.CertFile == "" {
		for _, kv := range [][2]string{{"key_file", h.KeyFile}, {"client_ca_file", h.ClientCAFile}, {"ca_file", h.CAFile}} {
			if kv[1] != "" {
				p.add(path+"."+kv[0], "needs "+path+".cert_file: HTTPS is on when the instance has a certificate")
				return
			}
		}
		return
	}
	_, err := h.ServerConfig()
	if err == nil {
		_, err = h.ClientConfig()
	}
	var fp *fileProblem
	switch {
	case err == nil:
	case errors.As(err, &fp):
		p.addErr(path+"."+fp.key, fp.reason, fp.err)
	default:
		p.add(path, fmt.Sprint(err))
	}
}
