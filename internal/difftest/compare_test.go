package difftest_test

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/difftest"
)

// reply encodes a backend message as the comparison receives it.
func reply(t *testing.T, m pgproto3.BackendMessage) difftest.Msg {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return difftest.Msg{Type: b[0], Body: b[5:]}
}

func rowDescription(tableOID, typeOID uint32) *pgproto3.RowDescription {
	return &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("id"), TableOID: tableOID, TableAttributeNumber: 1, DataTypeOID: typeOID, DataTypeSize: 4, TypeModifier: -1},
		{Name: []byte("note"), TableOID: tableOID, TableAttributeNumber: 2, DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1},
	}}
}

func TestTheComparisonIgnoresOnlyTableOIDsAndSourceLocations(t *testing.T) {
	pgErr := &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P05",
		Message: `prepared statement "s1" already exists`, File: "prepare.c", Line: 42, Routine: "StorePreparedStatement"}
	bare := *pgErr
	bare.File, bare.Line, bare.Routine = "", 0, ""
	otherCode := bare
	otherCode.Code = "26000"
	equal := [][2]pgproto3.BackendMessage{
		{rowDescription(16384, 23), rowDescription(16999, 23)},
		{pgErr, &bare},
	}
	for _, pair := range equal {
		if !difftest.Equal(reply(t, pair[0]), reply(t, pair[1])) {
			t.Errorf("%T: a legitimate pooler difference was reported", pair[0])
		}
	}
	differ := [][2]pgproto3.BackendMessage{
		{rowDescription(16384, 23), rowDescription(16384, 20)},
		{&bare, &otherCode},
		{&pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 1")}, &pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 2")}},
		{&pgproto3.ParameterStatus{Name: "TimeZone", Value: "UTC"}, &pgproto3.ParameterStatus{Name: "TimeZone", Value: "Etc/UTC"}},
		{&pgproto3.ReadyForQuery{TxStatus: 'I'}, &pgproto3.ReadyForQuery{TxStatus: 'T'}},
	}
	for _, pair := range differ {
		if difftest.Equal(reply(t, pair[0]), reply(t, pair[1])) {
			t.Errorf("%T: a real difference was normalised away", pair[0])
		}
	}
}

func TestFirstDifferenceFindsAChangedMissingOrExtraMessage(t *testing.T) {
	z := reply(t, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	c := reply(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	e := reply(t, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "08006", Message: "lost"})
	cases := []struct {
		want, got []difftest.Msg
		at        int
	}{
		{[]difftest.Msg{c, z}, []difftest.Msg{c, z}, -1},
		{[]difftest.Msg{c, z}, []difftest.Msg{e, z}, 0},
		{[]difftest.Msg{c, z}, []difftest.Msg{c}, 1},
		{[]difftest.Msg{c}, []difftest.Msg{c, z}, 1},
	}
	for i, tc := range cases {
		if at := difftest.FirstDifference(tc.want, tc.got); at != tc.at {
			t.Errorf("case %d: first difference at %d, want %d", i, at, tc.at)
		}
	}
}

func TestTheFrameReaderReadsAMessageOfSeveralMiB(t *testing.T) {
	big := difftest.Msg{Type: 'D', Body: bytes.Repeat([]byte{'x'}, 5<<20)}
	stream := difftest.Wire([]difftest.Msg{big, {Type: 'Z', Body: []byte{'I'}}})
	rd := bufio.NewReader(bytes.NewReader(stream))
	for _, want := range []difftest.Msg{big, {Type: 'Z', Body: []byte{'I'}}} {
		got, err := difftest.ReadMsg(rd)
		if err != nil || !difftest.Equal(got, want) {
			t.Fatalf("read %q of %d bytes, %v; want %q of %d", got.Type, got.Size(), err, want.Type, want.Size())
		}
	}
}

func TestAReportNamesTheBatchAndTheDecodedError(t *testing.T) {
	batch := []difftest.Msg{difftest.Parse("s1", "SELECT 1"), difftest.Bind("", "s1"), difftest.Execute("", 0), difftest.Execute("", 0), difftest.Sync()}
	if got, want := difftest.DescribeBatch(batch), "P(19) B(15) E(10)×2 S(5)"; got != want {
		t.Errorf("batch described as %q, want %q", got, want)
	}
	e := reply(t, &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "26000", Message: `prepared statement "s1" does not exist`})
	if got := difftest.DescribeReply(e); !strings.Contains(got, "ERROR 26000 prepared statement \"s1\" does not exist") {
		t.Errorf("error described as %q", got)
	}
}
