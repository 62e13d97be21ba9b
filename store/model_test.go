package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestColumnType(t *testing.T) {
	t.Parallel()
	for declared, want := range map[string]string{
		"INTEGER": TypeInteger, "bigint": TypeInteger, "INT": TypeInteger, "smallint": TypeInteger,
		"TEXT": TypeString, "varchar(20)": TypeString, "CHARACTER(3)": TypeString, "uuid": TypeString, "time": TypeString,
		"REAL": TypeNumber, "double": TypeNumber, "DECIMAL(10,2)": TypeNumber, "numeric": TypeNumber, "float": TypeNumber,
		"BOOLEAN": TypeBoolean, "bool": TypeBoolean,
		"DATE": TypeDate, "timestamp(3) with time zone": TypeTimestamp, "DATETIME": TypeTimestamp, "TIMESTAMP": TypeTimestamp,
		"json": TypeJSON,
		"":     "", "BLOB": "", "ANY": "", "varchar(": TypeString,
	} {
		if got := ColumnType(declared); got != want {
			t.Errorf("ColumnType(%q) = %q, want %q", declared, got, want)
		}
	}
}

type quoteDialect struct{}

func (quoteDialect) Name() string { return "test" }
func (quoteDialect) QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func TestModelRelation(t *testing.T) {
	t.Parallel()
	got, err := Model{Table: `analytics.cust"omers`}.Relation(quoteDialect{})
	if err != nil || got != `"analytics"."cust""omers"` {
		t.Errorf("table relation = %q, %v", got, err)
	}
	got, err = Model{SQL: "SELECT 1 -- one"}.Relation(quoteDialect{})
	if err != nil || got != "(\nSELECT 1 -- one\n)" {
		t.Errorf("SQL relation = %q, %v", got, err)
	}
	for _, m := range []Model{{}, {Table: "customers"}, {Table: "a.b", SQL: "SELECT 1"}} {
		if _, err := m.Relation(quoteDialect{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Relation of %+v: err = %v, want ErrInvalid", m, err)
		}
	}
}

func TestAccessFilterNormalize(t *testing.T) {
	t.Parallel()
	var fromJSON any
	if err := json.Unmarshal([]byte(`[1, 2.5, "x", true]`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	f := AccessFilter{Group: "g", Table: "analytics.customers", Column: "c", Operator: FilterIn, Value: fromJSON}
	if err := f.Normalize(); err != nil {
		t.Fatal(err)
	}
	if want := []any{int64(1), 2.5, "x", true}; !reflect.DeepEqual(f.Value, want) || !reflect.DeepEqual(f.Values(), want) {
		t.Errorf("value = %#v, want %#v", f.Value, want)
	}
	f = AccessFilter{Group: "g", Table: "analytics.customers", Column: "c", Operator: FilterEquals, Value: json.Number("12")}
	if err := f.Normalize(); err != nil || f.Value != int64(12) || len(f.Values()) != 1 {
		t.Errorf("json.Number: %#v, %v", f.Value, err)
	}

	tbl := Table{Schema: "analytics", Name: "customers", Columns: []Column{{Name: "Region"}}}
	f = AccessFilter{Table: "analytics.customers", Column: "region"}
	if col, err := f.CheckTable(tbl); err != nil || col != "Region" {
		t.Errorf("CheckTable = %q, %v", col, err)
	}
	f.Column = "regio"
	if _, err := f.CheckTable(tbl); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckTable of an unknown column: %v", err)
	}
	f = AccessFilter{Table: "analytics.orders", Column: "Region"}
	if _, err := f.CheckTable(tbl); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckTable of another table: %v", err)
	}
}
