// Command pgvalve is a PostgreSQL connection pooler. This file only wires
// subcommands, flags and signals to internal/app.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/pgvalve/pgvalve/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `pgvalve - a PostgreSQL connection pooler

Usage:
  pgvalve run [flags]                 serve clients (see pgvalve run -h)
  pgvalve check-config --config FILE  validate a configuration file
  pgvalve demo                        run in front of a throwaway local PostgreSQL
  pgvalve bench --target URL ...      replay a web app's load against endpoints (see pgvalve bench -h)
  pgvalve convert pgbouncer.ini       print a PgBouncer configuration as pgvalve's TOML
  pgvalve version                     print the version
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check-config":
		return cmdCheckConfig(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "convert":
		return cmdConvert(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "pgvalve %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "pgvalve: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func cmdRun(args []string, stderr io.Writer) int {
	cfg, opts, err := loadConfigOpts("run", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "pgvalve: %v\n", err)
		return 2
	}
	level := levelVar(cfg.LogLevel)
	log := newLogger(stderr, cfg.LogFormat, level)
	for _, n := range cfg.Notices() {
		log.Warn("a PgBouncer key was ignored", "notice", n)
	}
	if opts.cpuProfile != "" {
		stop, err := startCPUProfile(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "pgvalve: %v\n", err)
			return 2
		}
		defer stop()
	}
	srv := &server{cfg: cfg, log: log, level: level, ready: func() {}, takeover: opts.takeover}
	if opts.configPath != "" {
		// A reload reads the file again and applies the same flags on top,
		// as at start.
		srv.reload = func() (config.Config, error) {
			cfg, _, err := loadConfigOpts("run", args, io.Discard)
			return cfg, err
		}
	}
	if err := srv.serve(); err != nil {
		log.Error("pgvalve stopped", "err", err)
		return 1
	}
	return 0
}

// startCPUProfile profiles until the returned func runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file: TOML, or PgBouncer's pgbouncer.ini")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "pgvalve check-config: --config FILE is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, n := range cfg.Notices() {
		fmt.Fprintln(stderr, n)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

// newLogger logs to w at level, which a reload may change, as text or
// JSON lines (log_format).
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// levelVar holds a validated log_level.
func levelVar(level string) *slog.LevelVar {
	v := new(slog.LevelVar)
	setLevel(v, level)
	return v
}

func setLevel(v *slog.LevelVar, level string) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	v.Set(l)
}

// cmdConvert prints a PgBouncer file as the TOML pgvalve reads, with the
// keys it ignores as comments; a key it cannot honour is an error.
func cmdConvert(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: pgvalve convert pgbouncer.ini")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "pgvalve convert: %v\n", err)
		return 1
	}
	out, err := config.ConvertINI(args[0], data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, out)
	return 0
}
