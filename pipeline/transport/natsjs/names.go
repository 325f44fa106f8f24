package natsjs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxNameLen bounds stream and consumer names. JetStream allows 255, but a
// stream name is also a directory name under <DataDir>/jetstream, so stay
// well below common file-name limits.
const maxNameLen = 200

// ValidTopic reports whether topic is a busbar topic name: dot-separated
// tokens of letters, digits, '-' and '_' (for example busbar.bus.default).
func ValidTopic(topic string) error {
	if topic == "" {
		return fmt.Errorf("topic name is empty")
	}
	for _, tok := range strings.Split(topic, ".") {
		if tok == "" {
			return fmt.Errorf("topic %q: empty token (leading, trailing or double dot)", topic)
		}
		if i := strings.IndexFunc(tok, func(r rune) bool { return !nameRune(r) }); i >= 0 {
			return fmt.Errorf("topic %q: character %q not allowed (use letters, digits, '-', '_' and '.')", topic, tok[i])
		}
	}
	return nil
}

func nameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// StreamName is the JetStream stream that holds topic. The mapping is
// injective and readable:
//
//	'.' -> "_"    '_' -> "-_"    '-' -> "--"    letters and digits unchanged
//
// so busbar.q.orders.to-erp.http_1 becomes busbar_q_orders_to--erp_http-_1.
// '-' is the escape character, so decoding is unambiguous. A name whose
// encoding would exceed 200 characters is cut (at a character boundary of
// the topic) and suffixed with "-h" and 16 hex digits of the topic's SHA-256;
// "-h" never occurs in an unhashed name, so the two kinds never collide.
func StreamName(topic string) (string, error) {
	if err := ValidTopic(topic); err != nil {
		return "", err
	}
	return encodeName(topic), nil
}

// ConsumerName is the durable consumer of a consumer group. A durable
// consumer lives inside its topic's stream, so the (group, topic) pair is
// (consumer name, stream name). Groups follow the topic alphabet and the
// same encoding.
func ConsumerName(group string) (string, error) {
	if group == "" {
		return "", fmt.Errorf("consumer group name is empty")
	}
	if err := ValidTopic(group); err != nil {
		return "", fmt.Errorf("consumer group: %w", err)
	}
	return encodeName(group), nil
}

var nameEscaper = strings.NewReplacer("-", "--", "_", "-_", ".", "_")

func encodeName(s string) string {
	full := nameEscaper.Replace(s)
	if len(full) <= maxNameLen {
		return full
	}
	// Keep whole escape sequences only, so the "-h" marker stays aligned.
	const suffixLen = 2 + 16
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		enc := nameEscaper.Replace(s[i : i+1])
		if b.Len()+len(enc) > maxNameLen-suffixLen {
			break
		}
		b.WriteString(enc)
	}
	sum := sha256.Sum256([]byte(s))
	b.WriteString("-h")
	b.WriteString(hex.EncodeToString(sum[:8]))
	return b.String()
}
