package pclient

import (
	"fmt"
	"strings"

	"github.com/busbar/busbar/config"
)

// FromConfig turns the config's connection fields into a pclient.Conn: a
// file:/path token is read at every connection, a file:/path client secret
// when the config loads.
func FromConfig(url, token string, o *config.PulsarOAuth2, tls *config.PulsarTLS) (Conn, error) {
	c := Conn{URL: url}
	if f, ok := strings.CutPrefix(token, config.SecretFilePrefix); ok {
		c.TokenFile = f
	} else {
		c.Token = token
	}
	if o != nil {
		secret, err := config.ReadSecret(o.ClientSecret)
		if err != nil {
			return c, fmt.Errorf("pulsar oauth2 client_secret: %w", err)
		}
		c.OAuth2 = &OAuth2{IssuerURL: o.IssuerURL, Audience: o.Audience, Scope: o.Scope, ClientID: o.ClientID, ClientSecret: secret, PrivateKey: o.PrivateKey}
	}
	if tls != nil {
		c.TLS = TLS{CAFile: tls.CAFile, CertFile: tls.CertFile, KeyFile: tls.KeyFile, InsecureSkipVerify: tls.InsecureSkipVerify, VerifyHostname: tls.VerifyHostname}
	}
	return c, nil
}
