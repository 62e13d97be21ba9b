package audience

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// BenchmarkCountVersusHandWritten compares counting an audience as
// preview_audience does (compile the definition, run its count) with
// running the same count written by hand, on a demo warehouse of
// SIGNALSMITH_BENCH_SCALE customers (default 100,000; the figure
// is for 1,000,000, which takes about a minute to generate):
//
//	SIGNALSMITH_BENCH_SCALE=1000000 go test -run '^$' -bench CountVersus -benchtime 5x ./audience/
func BenchmarkCountVersusHandWritten(b *testing.B) {
	scale := 100000
	if s := os.Getenv("SIGNALSMITH_BENCH_SCALE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SIGNALSMITH_BENCH_SCALE=%q is not a positive number", s)
		}
		scale = n
	}
	w := openDemo(b, scale)
	cat := NewSnapshot(testModels(), nil)
	cases := []struct {
		name, def, hand string
	}{
		{
			name: "ca-pro-2-web-orders-90d",
			def: `{"model":"customers","conditions":{"all":[
				{"column":"state","operator":"equals","value":"CA"},
				{"column":"plan","operator":"equals","value":"pro"},
				{"relationship":"orders","aggregate":"count","operator":"greater_or_equal","value":2,
				 "within":{"column":"ordered_at","last_days":90},
				 "where":{"column":"channel","operator":"equals","value":"web"}}]}}`,
			hand: `SELECT count(*) FROM customers c WHERE c.state = 'CA' AND c.plan = 'pro' AND
				(SELECT count(*) FROM orders o WHERE o.customer_id = c.customer_id AND o.channel = 'web'
				 AND o.ordered_at >= '` + testNow.AddDate(0, 0, -90).Format("2006-01-02 15:04:05") + `') >= 2`,
		},
		{
			name: "emea-high-value",
			def: `{"model":"customers","conditions":{"all":[
				{"column":"region","operator":"equals","value":"EMEA"},
				{"column":"lifetime_value","operator":"greater_or_equal","value":1000}]}}`,
			hand: `SELECT count(*) FROM customers WHERE region = 'EMEA' AND lifetime_value >= 1000`,
		},
	}
	for _, tc := range cases {
		def, err := Parse([]byte(tc.def))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/compiled", func(b *testing.B) {
			for b.Loop() {
				q, err := Compile(def, cat, Options{Dialect: w.Dialect(), Now: testNow})
				if err != nil {
					b.Fatal(err)
				}
				c := q.Count()
				if _, err := w.Query(context.Background(), store.QueryLimits{}, c.SQL, c.Args...); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/hand-written", func(b *testing.B) {
			for b.Loop() {
				if _, err := w.Query(context.Background(), store.QueryLimits{}, tc.hand); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
