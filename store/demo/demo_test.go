package demo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/signalsmith/agent-server/store"
)

// demoNow is a fixed generation time, so tests do not depend on the clock.
var demoNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// generateDemo writes a demo warehouse into a fresh directory.
func generateDemo(t testing.TB, opts Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "warehouse")
	if err := Generate(context.Background(), dir, opts); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return dir
}

// openAnalytics opens a generated analytics.db directly, read-only and
// without the warehouse's authorizer, to check its content.
func openAnalytics(t testing.TB, dir string) *sql.DB {
	t.Helper()
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(dir, analyticsFile)), RawQuery: "mode=ro"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// queryInt runs a query returning one integer.
func queryInt(t testing.TB, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// contentHash hashes every row of the demo tables in key order, with each
// value's type, so equal hashes mean equal content.
func contentHash(t testing.TB, dir string) string {
	t.Helper()
	db := openAnalytics(t, dir)
	h := sha256.New()
	for _, q := range []string{
		"SELECT * FROM customers ORDER BY customer_id",
		"SELECT * FROM orders ORDER BY order_id",
		"SELECT * FROM events ORDER BY event_id",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(h, "%T:%v|", v, v)
			}
			h.Write([]byte{'\n'})
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if n == 0 {
			t.Fatalf("%s: no rows", q)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestGenerateDemoDeterministic(t *testing.T) {
	t.Parallel()
	base := Options{Scale: 1500, Seed: 42, Now: demoNow}
	want := contentHash(t, generateDemo(t, base))

	tests := []struct {
		name string
		opts Options
		same bool
	}{
		{"same options", base, true},
		{"same instant in another zone", Options{Scale: 1500, Seed: 42, Now: demoNow.In(time.FixedZone("X", 3600))}, true},
		{"another seed", Options{Scale: 1500, Seed: 43, Now: demoNow}, false},
		{"another time", Options{Scale: 1500, Seed: 42, Now: demoNow.Add(time.Hour)}, false},
		{"another scale", Options{Scale: 1501, Seed: 42, Now: demoNow}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := contentHash(t, generateDemo(t, tt.opts))
			if (got == want) != tt.same {
				t.Errorf("content hash equal = %v, want %v", got == want, tt.same)
			}
		})
	}
}

// TestGenerateDemoDefaultScale checks the default demo: the shape of each
// table and the audiences the tests and the demo rely on.
func TestGenerateDemoDefaultScale(t *testing.T) {
	t.Parallel()
	dir := generateDemo(t, Options{Now: demoNow})
	db := openAnalytics(t, dir)

	if got := queryInt(t, db, "SELECT count(*) FROM customers"); got != DefaultScale {
		t.Fatalf("customers = %d, want %d", got, DefaultScale)
	}

	t.Run("every value present", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			column string
			values []string
		}{
			{"customers.region", []string{"NA", "EMEA", "APAC", "LATAM"}},
			{"customers.plan", []string{"free", "pro", "enterprise"}},
			{"orders.channel", []string{"web", "app", "store"}},
			{"orders.category", []string{"electronics", "apparel", "home", "beauty", "sports", "grocery"}},
			{"events.event_type", []string{"page_view", "add_to_cart", "checkout", "email_open", "app_open"}},
			{"orders.currency", []string{"USD", "EUR", "GBP", "CAD"}},
		}
		for _, tt := range tests {
			table, col, _ := strings.Cut(tt.column, ".")
			rows, err := db.Query(fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s IS NOT NULL", col, table, col))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				got[v] = true
			}
			rows.Close()
			for _, v := range tt.values {
				if !got[v] {
					t.Errorf("%s: no %q among %v", tt.column, v, got)
				}
			}
			if tt.column != "orders.currency" && len(got) != len(tt.values) {
				t.Errorf("%s: values %v, want exactly %v", tt.column, got, tt.values)
			}
		}
	})

	t.Run("rates", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name     string
			query    string
			min, max float64
		}{
			{"null emails", "SELECT avg(email IS NULL) FROM customers", 0.015, 0.05},
			{"null plans", "SELECT avg(plan IS NULL) FROM customers", 0.015, 0.05},
			{"null phones", "SELECT avg(phone IS NULL) FROM customers", 0.16, 0.24},
			{"free plan", "SELECT avg(plan = 'free') FROM customers WHERE plan IS NOT NULL", 0.55, 0.65},
			{"pro plan", "SELECT avg(plan = 'pro') FROM customers WHERE plan IS NOT NULL", 0.25, 0.35},
			{"enterprise plan", "SELECT avg(plan = 'enterprise') FROM customers WHERE plan IS NOT NULL", 0.07, 0.13},
			{"hostile notes", "SELECT avg(coalesce(notes IN (" + hostileList + "), 0)) FROM customers", 0.01, 0.035},
			{"bland notes", "SELECT avg(notes IS NOT NULL AND notes NOT IN (" + hostileList + ")) FROM customers", 0.2, 0.4},
			{"customers without orders", "SELECT avg(customer_id NOT IN (SELECT customer_id FROM orders)) FROM customers", 0.12, 0.18},
			{"orders per customer", "SELECT (SELECT count(*) FROM orders) * 1.0 / (SELECT count(*) FROM customers)", 2.5, 3.5},
			{"events in the last 90 days", "SELECT avg(occurred_at >= datetime(?, '-90 days')) FROM events", 0.7, 0.95},
			{"marketing consent", "SELECT avg(marketing_consent) FROM customers", 0.55, 0.7},
			{"orders over three years", "SELECT avg(ordered_at >= datetime(?, '-3 years') AND ordered_at <= ?) FROM orders", 1, 1},
		}
		now := demoNow.Format(TimeFormat)
		for _, tt := range tests {
			var args []any
			for range strings.Count(tt.query, "?") {
				args = append(args, now)
			}
			var got float64
			if err := db.QueryRow(tt.query, args...).Scan(&got); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got < tt.min || got > tt.max {
				t.Errorf("%s = %.4f, want within [%.3f, %.3f]", tt.name, got, tt.min, tt.max)
			}
		}
	})

	t.Run("consistency", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name  string
			query string // counts violations
		}{
			{"US customers without a valid state", "SELECT count(*) FROM customers WHERE country = 'United States' AND (state IS NULL OR state NOT IN (" + usStates + "))"},
			{"customers without a name", "SELECT count(*) FROM customers WHERE first_name = '' OR last_name = ''"},
			{"duplicate emails", "SELECT count(*) - count(DISTINCT email) FROM customers WHERE email IS NOT NULL"},
			{"emails off the example domains", "SELECT count(*) FROM customers WHERE email NOT GLOB '*@example.com' AND email NOT GLOB '*@example.org' AND email NOT GLOB '*@example.net'"},
			{"lifetime value differs from the orders", "SELECT count(*) FROM customers c WHERE abs(c.lifetime_value - coalesce((SELECT sum(amount) FROM orders o WHERE o.customer_id = c.customer_id), 0)) > 0.005"},
			{"orders of unknown customers", "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM customers)"},
			{"events of unknown customers", "SELECT count(*) FROM events WHERE customer_id NOT IN (SELECT customer_id FROM customers)"},
			{"orders before signup", "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE o.ordered_at < c.signup_at"},
			{"events before signup", "SELECT count(*) FROM events e JOIN customers c USING (customer_id) WHERE e.occurred_at < c.signup_at"},
			{"malformed timestamps", "SELECT count(*) FROM orders WHERE ordered_at IS NOT datetime(ordered_at)"},
			{"malformed birth dates", "SELECT count(*) FROM customers WHERE birth_date IS NOT date(birth_date)"},
			{"invalid properties", "SELECT count(*) FROM events WHERE NOT json_valid(properties) OR json_type(properties) <> 'object'"},
			{"consent not 0 or 1", "SELECT count(*) FROM customers WHERE marketing_consent NOT IN (0, 1)"},
			{"non-positive amounts", "SELECT count(*) FROM orders WHERE amount <= 0"},
		}
		for _, tt := range tests {
			if got := queryInt(t, db, tt.query); got != 0 {
				t.Errorf("%s: %d", tt.name, got)
			}
		}
	})

	t.Run("California cities", func(t *testing.T) {
		t.Parallel()
		got := queryInt(t, db, "SELECT count(DISTINCT city) FROM customers WHERE state = 'CA' AND country = 'United States'")
		if got < 5 {
			t.Errorf("California has %d cities, want several", got)
		}
	})

	t.Run("California pro customers with 2 web orders in 90 days", func(t *testing.T) {
		t.Parallel()
		got := queryInt(t, db, `
			SELECT count(*) FROM customers c
			WHERE c.state = 'CA' AND c.plan = 'pro'
			  AND (SELECT count(*) FROM orders o
			       WHERE o.customer_id = c.customer_id AND o.channel = 'web'
			         AND o.ordered_at >= datetime(?, '-90 days')) >= 2`, demoNow.Format(TimeFormat))
		if got < 10 || got > 200 {
			t.Errorf("audience size %d, want 10-200", got)
		}
	})

	t.Run("indexes and statistics", func(t *testing.T) {
		t.Parallel()
		for _, idx := range []string{"customers_state", "customers_plan", "orders_customer_id", "orders_ordered_at", "events_customer_id", "events_occurred_at"} {
			if got := queryInt(t, db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?", idx); got != 1 {
				t.Errorf("index %s missing", idx)
			}
		}
		if got := queryInt(t, db, "SELECT count(*) FROM sqlite_stat1"); got == 0 {
			t.Error("no ANALYZE statistics")
		}
	})
}

// hostileList is the hostile notes as an SQL list.
var hostileList = func() string {
	quoted := make([]string, len(demoHostileNotes))
	for i, n := range demoHostileNotes {
		quoted[i] = "'" + strings.ReplaceAll(n, "'", "''") + "'"
	}
	return strings.Join(quoted, ", ")
}()

// usStates are the USPS codes of the states and DC, as an SQL list.
var usStates = func() string {
	codes := strings.Fields(`AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS
		MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY`)
	return "'" + strings.Join(codes, "', '") + "'"
}()

func TestGenerateDemoPhones(t *testing.T) {
	t.Parallel()
	db := openAnalytics(t, generateDemo(t, Options{Scale: 2000, Now: demoNow}))
	rows, err := db.Query("SELECT country, phone FROM customers WHERE phone IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	plausible := regexp.MustCompile(`^\+[1-9][0-9]{0,2}( [0-9-]+)+$`)
	us := regexp.MustCompile(`^\+1 [2-9][0-9]{2}-555-[0-9]{4}$`)
	for rows.Next() {
		var country, phone string
		if err := rows.Scan(&country, &phone); err != nil {
			t.Fatal(err)
		}
		if !plausible.MatchString(phone) || strings.Contains(phone, "#") || strings.Contains(phone, "{") {
			t.Errorf("%s phone %q is not plausible", country, phone)
		}
		if country == "United States" && !us.MatchString(phone) {
			t.Errorf("US phone %q does not match +1 AAA-555-NNNN", phone)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateDemoCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing bool // an earlier analytics.db must survive untouched
	}{
		{"fresh directory", false},
		{"over an earlier demo", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "warehouse")
			var before []byte
			if tt.existing {
				if err := Generate(context.Background(), dir, Options{Scale: 50, Now: demoNow}); err != nil {
					t.Fatal(err)
				}
				var err error
				if before, err = os.ReadFile(filepath.Join(dir, analyticsFile)); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			// Cancel once the build is under way: scale 200,000 takes far
			// longer than this.
			timer := time.AfterFunc(50*time.Millisecond, cancel)
			defer timer.Stop()
			err := Generate(ctx, dir, Options{Scale: 200000, Now: demoNow})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Generate = %v, want context.Canceled", err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != analyticsFile || !tt.existing {
					t.Errorf("left behind %s", e.Name())
				}
			}
			if tt.existing {
				after, err := os.ReadFile(filepath.Join(dir, analyticsFile))
				if err != nil {
					t.Fatal(err)
				}
				if string(after) != string(before) {
					t.Error("the earlier analytics.db changed")
				}
			}
			if Exists(dir) != tt.existing {
				t.Errorf("Exists = %v, want %v", !tt.existing, tt.existing)
			}
		})
	}
}

func TestGenerateDemoOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if Exists(dir) {
		t.Fatal("Exists on an empty directory")
	}
	err := Generate(context.Background(), dir, Options{Scale: -1})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("negative scale: %v, want ErrInvalid", err)
	}
	if err := Generate(context.Background(), dir, Options{Scale: 10}); err != nil {
		t.Fatal(err)
	}
	if !Exists(dir) {
		t.Fatal("Exists after Generate")
	}
	// The default Now is the present: the newest signup is at most a day old
	// plus the test's own run time.
	db := openAnalytics(t, dir)
	var newest string
	if err := db.QueryRow("SELECT max(max(signup_at), (SELECT max(occurred_at) FROM events)) FROM customers").Scan(&newest); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(TimeFormat, newest)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(at); age < 0 || age > 5*24*time.Hour {
		t.Errorf("newest timestamp %s is %s old", newest, age)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM customers"); got != 10 {
		t.Errorf("scale 10 gave %d customers", got)
	}
}

func BenchmarkGenerateDemo(b *testing.B) {
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		err := Generate(context.Background(), filepath.Join(dir, fmt.Sprint(i)), Options{Scale: DefaultScale, Now: demoNow})
		if err != nil {
			b.Fatal(err)
		}
	}
}
