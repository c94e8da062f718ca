// Command pgvalve is a PostgreSQL connection pooler. This file only wires
// subcommands, flags and signals to internal/app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `pgvalve - a PostgreSQL connection pooler

Usage:
  pgvalve run [flags]                 serve clients (see pgvalve run -h)
  pgvalve check-config --config FILE  validate a configuration file
  pgvalve demo                        run in front of a throwaway local PostgreSQL
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
	log := newLogger(stderr, cfg.LogLevel)
	if opts.cpuProfile != "" {
		stop, err := startCPUProfile(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "pgvalve: %v\n", err)
			return 2
		}
		defer stop()
	}
	if err := serve(cfg, log, func() {}); err != nil {
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

// serve runs pgvalve until a signal: SIGTERM drains (running transactions
// finish, up to shutdown_timeout), SIGINT closes every client at once.
// ready runs once pgvalve listens.
func serve(cfg config.Config, log *slog.Logger, ready func()) error {
	a := app.New(cfg, log)
	ln, err := a.Listen()
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	ready()
	select {
	case err := <-served:
		return err
	case sig := <-sigs:
		if sig == syscall.SIGTERM {
			log.Info("SIGTERM: draining", "shutdown_timeout", cfg.ShutdownTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			go func() {
				// A second signal stops waiting.
				select {
				case <-sigs:
					cancel()
				case <-ctx.Done():
				}
			}()
			a.Shutdown(ctx)
		} else {
			log.Info("SIGINT: closing every client")
			a.Close()
		}
	}
	return <-served
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (TOML)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "pgvalve check-config: --config FILE is required")
		return 2
	}
	if _, err := config.Load(*path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
