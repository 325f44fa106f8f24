package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/busbar/busbar/filters/transform/reshape"
)

// Connections, API destinations and chat robot targets (docs/targets.md):
// their names, defaults, checks, secrets and redaction. The http sink
// (sinks/http) builds requests from what this file accepts.

// Connection types.
const (
	ConnBasic  = "basic"
	ConnAPIKey = "api_key"
	ConnOAuth2 = "oauth2_client_credentials"
)

// Chat robot target types: a webhook URL, a text, and for dingtalk and
// feishu an optional signing secret.
const (
	TypeDingTalk = "dingtalk"
	TypeWeCom    = "wecom"
	TypeFeishu   = "feishu"
	TypeSlack    = "slack"
)

// Where an API key goes, and the token request's options.
const (
	APIKeyInHeader        = "header"
	APIKeyInQuery         = "query"
	OAuth2AuthStyleAuto   = "auto"
	OAuth2AuthStyleHead   = "header"
	OAuth2AuthStyleBody   = "body"
	DefaultOAuth2Method   = "POST"
	DefaultAPIKeyIn       = APIKeyInHeader
	DefaultOAuth2Style    = OAuth2AuthStyleAuto
	MaxRateLimitPerSecond = 100_000
)

// SecretFilePrefix starts a secret read from a file: "file:/run/secrets/x".
const SecretFilePrefix = "file:"

// maxSecretFile bounds a secret file: a secret is a line, not a document.
const maxSecretFile = 64 << 10

var (
	connTypes      = []string{ConnBasic, ConnAPIKey, ConnOAuth2}
	chatTypes      = []string{TypeDingTalk, TypeWeCom, TypeFeishu, TypeSlack}
	apiKeyPlaces   = []string{APIKeyInHeader, APIKeyInQuery}
	oauth2Methods  = []string{"POST", "GET"}
	oauth2Styles   = []string{OAuth2AuthStyleAuto, OAuth2AuthStyleHead, OAuth2AuthStyleBody}
	signedChatType = []string{TypeDingTalk, TypeFeishu}
)

// IsChat reports whether a target type is a chat robot preset.
func IsChat(typ string) bool { return slices.Contains(chatTypes, typ) }

// ResolvedDestination returns the destination the target's destination
// field names, once the config has its defaults applied; nil for targets
// without one.
func (t *Target) ResolvedDestination() *Destination { return t.dest }

// ResolvedConnection returns the connection the destination names, once
// the config has its defaults applied; nil when it names none.
func (d *Destination) ResolvedConnection() *Connection { return d.conn }

// ReadSecret returns a secret's value: the text of the file a
// "file:/path" reference names (without its trailing line break), or s
// itself. Errors name the file, never its content.
func ReadSecret(s string) (string, error) {
	path, ok := strings.CutPrefix(s, SecretFilePrefix)
	if !ok {
		return s, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("secret file %s is not a regular file", path)
	}
	if st.Size() > maxSecretFile {
		return "", fmt.Errorf("secret file %s is larger than %d KiB; a secret is one line", path, maxSecretFile>>10)
	}
	b := make([]byte, st.Size())
	if _, err := f.Read(b); err != nil && st.Size() > 0 {
		return "", fmt.Errorf("secret file %s: %w", path, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// SplitPlaceholders splits s into literal text and the JSONPaths of its
// placeholders, written open + "$..." + close: "{$.data.id}" in URLs,
// header and query values, "<$.data.id>" in chat texts. lits has one more
// entry than paths: lits[0] paths[0] lits[1] ... The paths are not
// compiled here (see reshape.ParsePath).
func SplitPlaceholders(s string, open, close byte) (lits, paths []string, err error) {
	start := string([]byte{open, '$'})
	for {
		i := strings.Index(s, start)
		if i < 0 {
			return append(lits, s), paths, nil
		}
		end := placeholderEnd(s, i+1, close)
		if end < 0 {
			return nil, nil, fmt.Errorf("the placeholder at %q has no closing %q", clip(s[i:], 24), close)
		}
		lits = append(lits, s[:i])
		paths = append(paths, s[i+1:end])
		s = s[end+1:]
	}
}

// placeholderEnd finds the close byte ending a placeholder whose path
// starts at s[i], skipping quoted names (['a}b']).
func placeholderEnd(s string, i int, close byte) int {
	var quote byte
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == close:
			return i
		}
	}
	return -1
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// placeholders checks the {$.json.path} (or <$.json.path>) placeholders of
// the value at path; it reports whether they are all usable. The value is
// quoted only when show allows it (header values are never quoted).
func (v *validator) placeholders(path, s string, open, close byte) bool {
	if v.isBad(path) || !strings.Contains(s, string([]byte{open, '$'})) {
		return true
	}
	_, paths, err := SplitPlaceholders(s, open, close)
	if err != nil {
		v.add(path, "%v (write placeholders as %c$.data.field%c)", err, open, close)
		return false
	}
	ok := true
	for _, p := range paths {
		if _, err := reshape.ParsePath(p); err != nil {
			v.add(path, "placeholder %c%s%c: %v", open, p, close, err)
			ok = false
		}
	}
	return ok
}

// linkAll points targets at their destinations and destinations at their
// connections. Names that match nothing (an invalid config) link nil.
func (c *Config) linkAll() {
	conns := make(map[string]*Connection, len(c.Connections))
	for i := range c.Connections {
		conns[c.Connections[i].Name] = &c.Connections[i]
	}
	dests := make(map[string]*Destination, len(c.Destinations))
	for i := range c.Destinations {
		d := &c.Destinations[i]
		d.conn = conns[d.Connection]
		dests[d.Name] = d
	}
	for i := range c.Rules {
		for j := range c.Rules[i].Targets {
			t := &c.Rules[i].Targets[j]
			t.dest = dests[t.Destination]
		}
	}
}

// applyConnectionDefaults fills the defaults of connections and
// destinations and links the references.
func (c *Config) applyConnectionDefaults() {
	for i := range c.Connections {
		cn := &c.Connections[i]
		if cn.APIKey != nil && cn.APIKey.In == "" {
			cn.APIKey.In = DefaultAPIKeyIn
		}
		if o := cn.OAuth2; o != nil {
			if o.Method == "" {
				o.Method = DefaultOAuth2Method
			}
			if o.AuthStyle == "" {
				o.AuthStyle = DefaultOAuth2Style
			}
		}
	}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		if d.Method == "" {
			d.Method = DefaultMethod
		}
		if d.Timeout == 0 {
			d.Timeout = Duration(DefaultTimeout)
		}
	}
	c.linkAll()
}

// cloneConnections deep-copies connections and destinations into out (a
// shallow copy of c) and links out's own copies.
func (c *Config) cloneConnections(out *Config) {
	out.Connections = slices.Clone(c.Connections)
	for i := range out.Connections {
		cn := &out.Connections[i]
		cn.Headers, cn.Query, cn.Body = maps.Clone(cn.Headers), maps.Clone(cn.Query), maps.Clone(cn.Body)
		if cn.Basic != nil {
			b := *cn.Basic
			cn.Basic = &b
		}
		if cn.APIKey != nil {
			k := *cn.APIKey
			cn.APIKey = &k
		}
		if cn.OAuth2 != nil {
			o := *cn.OAuth2
			o.Scopes = slices.Clone(o.Scopes)
			o.Headers, o.Query, o.Body = maps.Clone(o.Headers), maps.Clone(o.Query), maps.Clone(o.Body)
			cn.OAuth2 = &o
		}
	}
	out.Destinations = slices.Clone(c.Destinations)
	for i := range out.Rules {
		for j := range out.Rules[i].Targets {
			t := &out.Rules[i].Targets[j]
			t.Query = maps.Clone(t.Query)
		}
	}
	out.linkAll()
}

// redactConnections hides the secrets of connections and chat targets in
// out, a copy of c whose ${ENV} references are already restored: secrets,
// and every value of headers, query and body parameters, become
// RedactedValue unless they came from a reference (shown as such) or name a
// secret file (file:/path, which is not itself secret). A chat robot's
// webhook URL is a credential: it keeps only its scheme and host.
func (c *Config) redactConnections(out *Config) {
	hide := func(path string, s *string) {
		if _, ref := c.templates[path]; ref || *s == "" || strings.HasPrefix(*s, SecretFilePrefix) {
			return
		}
		*s = RedactedValue
	}
	hideMap := func(path string, m map[string]string) {
		for k := range m {
			if _, ref := c.templates[join(path, k)]; !ref {
				m[k] = RedactedValue
			}
		}
	}
	for i := range out.Connections {
		cn := &out.Connections[i]
		p := fmt.Sprintf("connections[%d]", i)
		if cn.Basic != nil {
			hide(p+".basic.password", &cn.Basic.Password)
		}
		if cn.APIKey != nil {
			hide(p+".api_key.value", &cn.APIKey.Value)
		}
		if o := cn.OAuth2; o != nil {
			hide(p+".oauth2.client_secret", &o.ClientSecret)
			if _, ref := c.templates[p+".oauth2.token_url"]; !ref {
				o.TokenURL = redactPassword(o.TokenURL)
			}
			hideMap(p+".oauth2.headers", o.Headers)
			hideMap(p+".oauth2.query", o.Query)
			hideMap(p+".oauth2.body", o.Body)
		}
		hideMap(p+".headers", cn.Headers)
		hideMap(p+".query", cn.Query)
		hideMap(p+".body", cn.Body)
	}
	for i := range out.Destinations {
		if _, ref := c.templates[fmt.Sprintf("destinations[%d].url", i)]; !ref {
			out.Destinations[i].URL = redactPassword(out.Destinations[i].URL)
		}
	}
	for i := range out.Rules {
		for j := range out.Rules[i].Targets {
			t := &out.Rules[i].Targets[j]
			tp := fmt.Sprintf("rules[%d].targets[%d]", i, j)
			hide(tp+".secret", &t.Secret)
			hideMap(tp+".query", t.Query)
			if _, ref := c.templates[tp+".url"]; IsChat(t.Type) && !ref && t.URL != "" {
				t.URL = redactWebhook(t.URL)
			}
		}
	}
	out.linkAll()
}

// redactWebhook keeps a chat webhook's scheme and host: its path and query
// hold the robot's token.
func redactWebhook(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return RedactedValue
	}
	return u.Scheme + "://" + u.Host + "/" + RedactedValue
}

// connections checks connections: names, types, auth blocks and
// parameters. It returns the declared names.
func (v *validator) connections(cs []Connection) map[string]string {
	names := map[string]string{}
	for i := range cs {
		cn := &cs[i]
		p := fmt.Sprintf("connections[%d]", i)
		if v.name(p+".name", "connection name", cn.Name) {
			if first, dup := names[cn.Name]; dup {
				v.add(p+".name", "connection %q is declared twice (first %s); connection names must be unique", cn.Name, v.where(first))
			} else {
				names[cn.Name] = p + ".name"
			}
		}
		switch {
		case cn.Type == "":
			v.add(p+".type", "missing connection type (add type: %s)", orList(connTypes))
		case !slices.Contains(connTypes, cn.Type):
			v.add(p+".type", "%s is not a connection type (use %s%s)", v.show(p+".type", cn.Type), orList(connTypes), didYouMean(cn.Type, connTypes))
		}
		blocks := []struct {
			key, typ string
			set      bool
		}{{"basic", ConnBasic, cn.Basic != nil}, {"api_key", ConnAPIKey, cn.APIKey != nil}, {"oauth2", ConnOAuth2, cn.OAuth2 != nil}}
		for _, b := range blocks {
			switch {
			case b.set && cn.Type != b.typ && slices.Contains(connTypes, cn.Type):
				v.add(p+"."+b.key, "%s: applies to connections of type %s only (this one is %q); remove it or set type: %s", b.key, b.typ, cn.Type, b.typ)
			case !b.set && cn.Type == b.typ && !v.isBad(p+"."+b.key):
				v.add(p+"."+b.key, "a connection of type %s needs its %s: block (%s)", b.typ, b.key, connExample[b.typ])
			}
		}
		if b := cn.Basic; b != nil && cn.Type == ConnBasic {
			v.required(p+".basic.username", b.Username, "username")
			v.secret(p+".basic.password", b.Password, "password")
		}
		if k := cn.APIKey; k != nil && cn.Type == ConnAPIKey {
			kp := p + ".api_key"
			if k.In != "" && !slices.Contains(apiKeyPlaces, k.In) {
				v.add(kp+".in", "%s is not a place for an API key (use %s)", v.show(kp+".in", k.In), orList(apiKeyPlaces))
			}
			switch {
			case k.Name == "":
				v.add(kp+".name", "missing name: the header or query parameter that carries the key (add name: X-Api-Key)")
			case k.In != APIKeyInQuery && !validHeaderName(k.Name):
				v.add(kp+".name", "%q is not a valid HTTP header name (use letters, digits and -)", k.Name)
			}
			v.secret(kp+".value", k.Value, "value")
		}
		if o := cn.OAuth2; o != nil && cn.Type == ConnOAuth2 {
			op := p + ".oauth2"
			v.plainURL(op+".token_url", o.TokenURL, "token_url", "the token endpoint")
			v.required(op+".client_id", o.ClientID, "client_id")
			v.secret(op+".client_secret", o.ClientSecret, "client_secret")
			if o.Method != "" && !slices.Contains(oauth2Methods, o.Method) {
				v.add(op+".method", "%s is not a method of token requests (use %s)", v.show(op+".method", o.Method), orList(oauth2Methods))
			}
			if o.AuthStyle != "" && !slices.Contains(oauth2Styles, o.AuthStyle) {
				v.add(op+".auth_style", "%s is not an auth style (use %s)", v.show(op+".auth_style", o.AuthStyle), orList(oauth2Styles))
			}
			for j, s := range o.Scopes {
				if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n") {
					v.add(fmt.Sprintf("%s.scopes[%d]", op, j), "a scope is one word without spaces; list each scope as its own item")
				}
			}
			v.headers(op+".headers", o.Headers)
			v.paramNames(op+".query", o.Query)
			v.paramNames(op+".body", o.Body)
		}
		v.headers(p+".headers", cn.Headers)
		v.paramNames(p+".query", cn.Query)
		v.paramNames(p+".body", cn.Body)
	}
	return names
}

var connExample = map[string]string{
	ConnBasic:  "basic: {username: ..., password: ${PASSWORD}}",
	ConnAPIKey: "api_key: {name: X-Api-Key, value: ${API_KEY}}",
	ConnOAuth2: "oauth2: {token_url: https://..., client_id: ..., client_secret: ${CLIENT_SECRET}}",
}

// destinations checks destinations and their connection references. It
// returns them by name.
func (v *validator) destinations(ds []Destination, conns map[string]string) map[string]*Destination {
	out := map[string]*Destination{}
	names := map[string]string{}
	for i := range ds {
		d := &ds[i]
		p := fmt.Sprintf("destinations[%d]", i)
		if v.name(p+".name", "destination name", d.Name) {
			if first, dup := names[d.Name]; dup {
				v.add(p+".name", "destination %q is declared twice (first %s); destination names must be unique", d.Name, v.where(first))
			} else {
				names[d.Name] = p + ".name"
				out[d.Name] = d
			}
		}
		v.templatedURL(p+".url", d.URL)
		v.method(p+".method", d.Method)
		if d.Connection != "" {
			if _, ok := conns[d.Connection]; !ok {
				v.add(p+".connection", "connection %s is not declared (declare it under connections:%s)", v.show(p+".connection", d.Connection), suggest(d.Connection, keys(conns)))
			}
		}
		v.intField(p+".rate_limit_per_second", "Destination.rate_limit_per_second", int64(d.RateLimitPerSecond), 0)
		v.durationField(p+".timeout", "Destination.timeout", d.Timeout, DefaultTimeout)
	}
	return out
}

// suggest is "; did you mean X?" for a name close to one of names, else "".
func suggest(s string, names []string) string {
	if c := closest(s, names); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

func keys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// httpTarget checks what only http and chat targets have: where they
// deliver, the destination reference, query parameters, placeholders, and a
// chat robot's secret and text. It runs instead of the plain url check.
func (v *validator) httpTarget(path string, t *Target) {
	chat := IsChat(t.Type)
	if t.Destination != "" {
		switch {
		case t.Type != TypeHTTP:
			v.add(path+".destination", "destination: applies to targets of type http only (this one is %q)", t.Type)
		case v.dests[t.Destination] == nil && !v.isBad(path+".destination"):
			v.add(path+".destination", "destination %s is not declared (declare it under destinations:%s)", v.show(path+".destination", t.Destination), suggest(t.Destination, destNames(v.dests)))
		}
		if t.URL != "" {
			v.add(path+".url", "give url or destination, not both (the destination has the URL)")
		}
		for _, f := range []string{"method", "timeout"} {
			if v.written(path + "." + f) {
				v.add(path+"."+f, "a target with a destination takes its %s from the destination %q; set it there", f, t.Destination)
			}
		}
	} else if t.Type == TypeHTTP || chat {
		v.httpURL(path+".url", t.URL)
		v.placeholders(path+".url", t.URL, '{', '}')
	}
	for _, k := range slices.Sorted(maps.Keys(t.Headers)) {
		v.placeholders(join(path+".headers", k), t.Headers[k], '{', '}')
	}
	v.paramNames(path+".query", t.Query)
	for _, k := range slices.Sorted(maps.Keys(t.Query)) {
		v.placeholders(join(path+".query", k), t.Query[k], '{', '}')
	}
	if len(t.Query) > 0 && t.Type != TypeHTTP && !chat {
		v.add(path+".query", "query: applies to http and chat robot targets only")
	}

	if t.Secret != "" {
		switch {
		case !slices.Contains(signedChatType, t.Type):
			v.add(path+".secret", "secret: signs dingtalk and feishu robot messages only (this target is %q); remove it", t.Type)
		default:
			v.secret(path+".secret", t.Secret, "secret")
		}
	}
	if !chat {
		if t.Text != "" {
			v.add(path+".text", "text: applies to chat robot targets only (%s)", orList(chatTypes))
		}
		return
	}
	if t.Method != "" && t.Method != "POST" {
		v.add(path+".method", "a %s robot is posted to; remove method", t.Type)
	}
	if v.written(path + ".mode") {
		v.add(path+".mode", "a %s robot gets a message, not a CloudEvent; remove mode", t.Type)
	}
	whole := t.Transform.FormOf() == reshape.FormWhole
	switch {
	case t.Text == "" && whole && !v.isBad(path+".text"):
		v.add(path+".text", "a %s target needs text: the message, with <$.json.path> placeholders (text: \"Order <$.data.orderId> failed\"), or a transform that makes the text", t.Type)
	case t.Text != "" && !whole:
		v.add(path+".text", "give text or a transform that makes the text, not both (a transform with only mask: is fine: text reads the masked event)")
	default:
		v.placeholders(path+".text", t.Text, '<', '>')
	}
}

func destNames(m map[string]*Destination) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func (v *validator) method(path, m string) {
	if m == "" || slices.Contains(methods, m) {
		return
	}
	if up := strings.ToUpper(m); slices.Contains(methods, up) {
		v.add(path, "write the method in upper case: %q", up)
		return
	}
	v.add(path, "%s is not a supported method (use %s)", v.show(path, m), orList(methods))
}

// required reports an empty required string.
func (v *validator) required(path, s, key string) {
	if s == "" && !v.isBad(path) {
		v.add(path, "missing %s", key)
	}
}

// secret checks a secret: present, and when it names a file, readable.
// Neither the value nor the file's content is ever quoted.
func (v *validator) secret(path, s, key string) {
	if v.isBad(path) {
		return
	}
	if s == "" {
		if _, ref := v.templates[path]; ref {
			v.add(path, "%s is empty (check the environment variable it comes from)", key)
			return
		}
		v.add(path, "missing %s (write it as an environment variable reference, %s: ${NAME}, or a file, %s: file:/run/secrets/name)", key, key, key)
		return
	}
	if !strings.HasPrefix(s, SecretFilePrefix) {
		return
	}
	got, err := ReadSecret(s)
	switch {
	case err != nil:
		v.add(path, "%v (the file must be readable when busbar loads the config)", err)
	case got == "":
		v.add(path, "the secret file %s is empty", strings.TrimPrefix(s, SecretFilePrefix))
	}
}

// paramNames checks the names of query or body parameters.
func (v *validator) paramNames(path string, m map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.TrimSpace(k) == "" {
			v.add(join(path, k), "a parameter needs a name")
		}
	}
}

// plainURL checks a required http(s) URL without placeholders.
func (v *validator) plainURL(path, s, key, what string) {
	if s == "" {
		if !v.isBad(path) {
			v.add(path, "missing %s: %s (add %s: https://...)", key, what, key)
		}
		return
	}
	v.httpURL(path, s)
}

// templatedURL checks a destination's URL: required, http(s) with a host
// once its {$.json.path} placeholders are filled in.
func (v *validator) templatedURL(path, s string) {
	if s == "" {
		if !v.isBad(path) {
			v.add(path, "missing url: the API's endpoint (add url: https://api.example.com/orders/{$.data.orderId})")
		}
		return
	}
	if !v.placeholders(path, s, '{', '}') {
		return
	}
	lits, paths, _ := SplitPlaceholders(s, '{', '}')
	filled := lits[0]
	for i := range paths {
		filled += "x" + lits[i+1]
	}
	if _, rest, ok := strings.Cut(lits[0], "://"); len(paths) > 0 && (!ok || !strings.ContainsAny(rest, "/?")) {
		v.add(path, "a placeholder cannot be in the URL's scheme or host; put it in the path or the query")
		return
	}
	v.httpURL(path, filled)
}
