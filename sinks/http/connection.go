package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/url"
	"time"

	"github.com/busbar/busbar/config"
)

// connection is a config.Connection ready to use: its secrets read, its
// parameters parsed, and for OAuth 2.0 the process-wide token cache.
type connection struct {
	name              string
	user, pass        string // basic
	keyName, keyValue string // api_key
	keyInQuery        bool
	oauth             *tokenSource
	headers           nethttp.Header
	query             url.Values
	body              map[string]json.RawMessage // fields merged into JSON object bodies
}

func newConnection(c *config.Connection, timeout time.Duration) (*connection, error) {
	cn := &connection{name: c.Name, headers: nethttp.Header{}, query: url.Values{}}
	secret := func(what, s string) (string, error) {
		v, err := config.ReadSecret(s)
		if err != nil {
			return "", fmt.Errorf("connection %q: %s: %w", c.Name, what, err)
		}
		return v, nil
	}
	var err error
	switch c.Type {
	case config.ConnBasic:
		if c.Basic == nil {
			return nil, fmt.Errorf("connection %q: type basic needs basic:", c.Name)
		}
		cn.user = c.Basic.Username
		if cn.pass, err = secret("password", c.Basic.Password); err != nil {
			return nil, err
		}
	case config.ConnAPIKey:
		if c.APIKey == nil {
			return nil, fmt.Errorf("connection %q: type api_key needs api_key:", c.Name)
		}
		cn.keyName, cn.keyInQuery = c.APIKey.Name, c.APIKey.In == config.APIKeyInQuery
		if cn.keyValue, err = secret("api_key.value", c.APIKey.Value); err != nil {
			return nil, err
		}
	case config.ConnOAuth2:
		if c.OAuth2 == nil {
			return nil, fmt.Errorf("connection %q: type %s needs oauth2:", c.Name, config.ConnOAuth2)
		}
		s, err := secret("oauth2.client_secret", c.OAuth2.ClientSecret)
		if err != nil {
			return nil, err
		}
		cn.oauth = sharedTokenSource(c.Name, c.OAuth2, s, timeout)
	default:
		return nil, fmt.Errorf("connection %q: unknown type %q", c.Name, c.Type)
	}
	for k, v := range c.Headers {
		cn.headers.Set(k, v)
	}
	for k, v := range c.Query {
		cn.query.Set(k, v)
	}
	if len(c.Body) > 0 {
		cn.body = make(map[string]json.RawMessage, len(c.Body))
		for k, v := range c.Body {
			b, _ := json.Marshal(v)
			cn.body[k] = b
		}
	}
	return cn, nil
}

// authorize adds the connection's credentials to req, fetching an OAuth
// 2.0 token when needed. It returns the token's generation (0 without
// OAuth 2.0), for invalidating it when the destination answers 401.
func (cn *connection) authorize(ctx context.Context, req *nethttp.Request) (uint64, error) {
	switch {
	case cn.oauth != nil:
		tok, gen, err := cn.oauth.Token(ctx)
		if err != nil {
			return 0, err
		}
		tok.SetAuthHeader(req)
		return gen, nil
	case cn.user != "" || cn.pass != "":
		req.SetBasicAuth(cn.user, cn.pass)
	case cn.keyName != "" && cn.keyInQuery:
		q := req.URL.Query()
		q.Set(cn.keyName, cn.keyValue)
		req.URL.RawQuery = q.Encode()
	case cn.keyName != "":
		req.Header.Set(cn.keyName, cn.keyValue)
	}
	return 0, nil
}

// mergeBody sets the connection's body fields in a JSON object body; any
// other body comes back unchanged.
func (cn *connection) mergeBody(b []byte) []byte {
	if len(cn.body) == 0 {
		return b
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil || obj == nil {
		return b
	}
	for k, v := range cn.body {
		obj[k] = v
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return b
	}
	return out
}
