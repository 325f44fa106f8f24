package natsjs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
)

const (
	// HeaderUUID carries the watermill message UUID (the same header name
	// watermill-nats uses, so its consumers can read our messages).
	HeaderUUID = "_watermill_message_uuid"
	// HeaderMetadata carries, as base64 of a JSON object, the metadata
	// entries that cannot travel as plain NATS headers unchanged: keys that
	// are not header tokens or start with "Nats-" (reserved by JetStream,
	// where e.g. Nats-Msg-Id would change behaviour), and values that NATS
	// would alter (CR/LF, leading or trailing spaces).
	HeaderMetadata = "Busbar-Metadata"
)

// marshal turns a watermill message into a NATS message on subject topic.
// Every metadata entry survives the round trip byte for byte.
func marshal(topic string, m *message.Message) (*nats.Msg, error) {
	nm := &nats.Msg{Subject: topic, Data: m.Payload, Header: make(nats.Header, len(m.Metadata)+1)}
	nm.Header.Set(HeaderUUID, m.UUID)
	var odd map[string]string
	for k, v := range m.Metadata {
		if plainHeader(k, v) {
			nm.Header.Set(k, v)
			continue
		}
		if odd == nil {
			odd = map[string]string{}
		}
		odd[k] = v
	}
	if odd != nil {
		b, err := json.Marshal(odd)
		if err != nil {
			return nil, fmt.Errorf("message %s: encoding metadata: %w", m.UUID, err)
		}
		nm.Header.Set(HeaderMetadata, base64.StdEncoding.EncodeToString(b))
	}
	return nm, nil
}

// plainHeader reports whether k: v survives as a NATS header unchanged.
func plainHeader(k, v string) bool {
	if k == "" || k == HeaderUUID || k == HeaderMetadata || len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < 33 || c > 126 || strings.IndexByte(`"()/,:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return !strings.ContainsAny(v, "\r\n") && textproto.TrimString(v) == v
}

// unmarshal turns a JetStream message back into a watermill message. A
// message published by something else than busbar (no UUID header) gets
// "<stream>:<sequence>" as its UUID; an undecodable metadata header is
// reported but the message is still delivered with the rest.
func unmarshal(nm *nats.Msg) (*message.Message, error) {
	h := nm.Header
	uuid := h.Get(HeaderUUID)
	if uuid == "" {
		if md, err := nm.Metadata(); err == nil {
			uuid = md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
		}
	}
	m := message.NewMessage(uuid, nm.Data)
	var err error
	for k, vs := range h {
		switch {
		case k == HeaderUUID || len(vs) == 0 || len(k) >= 5 && strings.EqualFold(k[:5], "Nats-"):
		case k == HeaderMetadata:
			var odd map[string]string
			b, derr := base64.StdEncoding.DecodeString(vs[0])
			if derr == nil {
				derr = json.Unmarshal(b, &odd)
			}
			if derr != nil {
				err = fmt.Errorf("message %s: header %s: %w", uuid, HeaderMetadata, derr)
				continue
			}
			for ok, ov := range odd {
				m.Metadata.Set(ok, ov)
			}
		default:
			m.Metadata.Set(k, vs[0])
		}
	}
	return m, err
}
