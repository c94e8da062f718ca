package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestProtocolsReadPgBouncersNames(t *testing.T) {
	for in, want := range map[string][2]uint16{
		"secure":          {tls.VersionTLS12, tls.VersionTLS13},
		"":                {tls.VersionTLS12, tls.VersionTLS13},
		"all":             {tls.VersionTLS10, tls.VersionTLS13},
		"tlsv1.3":         {tls.VersionTLS13, tls.VersionTLS13},
		"TLSv1.2,tlsv1.3": {tls.VersionTLS12, tls.VersionTLS13},
	} {
		min, max, err := Versions(in)
		if err != nil || min != want[0] || max != want[1] {
			t.Errorf("%q: %x-%x %v, want %x-%x", in, min, max, err, want[0], want[1])
		}
	}
	if _, _, err := Versions("sslv3"); err == nil || !strings.Contains(err.Error(), "sslv3") {
		t.Errorf("sslv3: %v, want it named in an error", err)
	}
}

func TestCiphersReadKeywordsAndIANANames(t *testing.T) {
	if ids, err := Ciphers("default"); err != nil || ids != nil {
		t.Errorf("default: %v %v, want Go's choice (nil)", ids, err)
	}
	ids, err := Ciphers("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
	if err != nil || len(ids) != 2 || ids[0] != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("IANA list: %v %v", ids, err)
	}
	if _, err := Ciphers("HIGH:!aNULL"); err == nil {
		t.Error("an OpenSSL cipher string was accepted; Go cannot honour it")
	}
}
