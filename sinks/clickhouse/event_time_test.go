package clickhouse

import (
	"math/rand/v2"
	"testing"
	"time"
)

// parseTime must read every time exactly as time.Parse(time.RFC3339Nano)
// does, and reject what it rejects.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	cases := []string{
		"2025-05-01T10:00:00Z", "2025-05-01T10:00:00.123Z", "2025-05-01T10:00:00.123456789Z",
		"2025-05-01T10:00:00.1234567891Z", "2025-05-01T10:00:00.Z", "2024-02-29T23:59:59Z",
		"2023-02-29T00:00:00Z", "2025-04-31T00:00:00Z", "2025-13-01T00:00:00Z", "2025-00-01T00:00:00Z",
		"2025-05-01T24:00:00Z", "2025-05-01T10:60:00Z", "2025-05-01T10:00:60Z",
		"2025-05-01T10:00:00+02:00", "2025-05-01T10:00:00.5-07:30", "2025-05-01T10:00:00+24:00",
		"2025-05-01T10:00:00+0200", "2025-05-01t10:00:00Z", "2025-05-01T10:00:00z",
		"2025-05-01 10:00:00Z", "1900-01-01T00:00:00Z", "1899-12-31T23:59:59.999Z",
		"2299-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999999Z", "2000-02-29T12:00:00Z",
		"2100-02-29T12:00:00Z", "2025-05-01T10:00:00", "2025-05-01T1a:00:00Z", "", "x",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		tm := time.Unix(r.Int64N(int64(13e9))-int64(6e9), r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(48)-24)*900))
		cases = append(cases, tm.Format(time.RFC3339Nano), tm.Format(time.RFC3339), tm.Format("2006-01-02T15:04:05.000Z07:00"))
	}
	for _, s := range cases {
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, gerr := parseTime(s)
		if (werr != nil) != (gerr != nil) || !got.Equal(want) {
			t.Fatalf("parseTime(%q) = %v, %v; time.Parse: %v, %v", s, got, gerr, want, werr)
		}
	}
}

func BenchmarkParseTime(b *testing.B) {
	for b.Loop() {
		if _, err := parseTime("2025-05-01T10:00:00.123Z"); err != nil {
			b.Fatal(err)
		}
	}
}
