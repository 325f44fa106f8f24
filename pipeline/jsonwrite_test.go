package pipeline

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// marshalled is json.Marshal(s) with \b and \f written as \u0008 and
// \u000c, as the SDK's writer (and encoding/json before Go 1.22) writes them.
func marshalled(s string) string {
	j, _ := json.Marshal(s)
	out := make([]byte, 0, len(j))
	for i := 0; i < len(j); i++ {
		if j[i] != '\\' {
			out = append(out, j[i])
			continue
		}
		i++
		switch j[i] {
		case 'b':
			out = append(out, `\u0008`...)
		case 'f':
			out = append(out, `\u000c`...)
		default:
			out = append(out, '\\', j[i])
		}
	}
	return string(out)
}

// AppendJSONString writes what the SDK path writes, for every kind of byte.
func TestAppendJSONString(t *testing.T) {
	check := func(s string) {
		t.Helper()
		want := marshalled(s)
		if got := AppendJSONString([]byte("x"), s); string(got) != "x"+want {
			t.Fatalf("%q: got %s, want %s", s, got[1:], want)
		}
	}
	for _, s := range []string{"", "plain", `say "hi" \ there`, "tab\tnl\ncr\r\x00\x1f\x7f\b\f", "<b>&amp;</b>",
		"\u2028\u2029 line seps", "é 😀 中", "bad \xff\xfe utf8", "cut \xe2\x80", "\xed\xa0\x80 surrogate"} {
		check(s)
	}
	// The reference itself: the subject as Encode writes it.
	for _, s := range []string{"a\bb\fc\x01d\te", `q"<&>\`, "x\u2028y"} {
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("s")
		ev.SetType("t")
		ev.SetSubject(s)
		enc, err := Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if want := `"subject":` + string(AppendJSONString(nil, s)); !strings.Contains(string(enc), want) {
			t.Errorf("Encode wrote %s, want it to hold %s", enc, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\"\\<>&\n\b\f\x01\x7f\xc3\xa9\xe2\x80\xa8\xff\xf0\x9f\x98\x80")
	for range 20000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b<\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		want := marshalled(s)
		if got := AppendJSONString(nil, s); string(got) != want {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}
