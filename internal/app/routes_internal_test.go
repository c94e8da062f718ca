package app

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestOnlyLoginErrorsAreRefusalsTheRestAreRetried(t *testing.T) {
	for _, tc := range []struct {
		err     error
		refused bool
	}{
		{&pgconn.PgError{Code: "28P01"}, true},                         // wrong password
		{&pgconn.PgError{Code: "28000"}, true},                         // no pg_hba entry
		{&pgconn.PgError{Code: "3D000"}, true},                         // no such database
		{&pgconn.PgError{Code: "42501"}, true},                         // no CONNECT privilege
		{&pgconn.PgError{Code: "22023"}, true},                         // bad startup setting
		{fmt.Errorf("dial: %w", &pgconn.PgError{Code: "28P01"}), true}, // wrapped
		{&pgconn.PgError{Code: "57P01"}, false},                        // backend terminated during login
		{&pgconn.PgError{Code: "57P03"}, false},                        // starting up
		{&pgconn.PgError{Code: "53300"}, false},                        // too many connections
		{&pgconn.PgError{Code: "53200"}, false},                        // out of memory
		{&pgconn.PgError{Code: "08006"}, false},
		{&pgconn.PgError{Code: "XX000"}, false},
		{errors.New("connection refused"), false},
	} {
		if got := refusedLogin(tc.err); got != tc.refused {
			t.Errorf("refusedLogin(%v) = %v, want %v", tc.err, got, tc.refused)
		}
	}
}
