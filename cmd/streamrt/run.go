package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/streamrt/streamrt/cmd/streamrt/internal/broker"

	streamrt "github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
)

func cmdRun(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("run", "run -c FILE [flags]", `Run the app described by FILE until interrupted (SIGINT or SIGTERM).

The flags below override the file's keys brokers, http and state_dir, which
the environment's STREAMRT_<KEY> variables override in turn.`)
	file := f.String("config", "", "the app's YAML config `FILE` (required)")
	f.alias("c", "config")
	var embedded embeddedFlag
	f.Var(&embedded, "embedded-broker", "first start an in-memory Kafka-protocol broker on ADDR\n(default "+broker.DefaultAddr+"); brokers default to it.\nFor development only: its data is lost at exit")
	brokers := f.String("brokers", "", "Kafka seed brokers, a comma-separated `LIST` of host:port")
	httpAddr := f.String("http", "", "query and metrics listen and advertised `ADDR` (host:port)")
	stateDir := f.String("state-dir", "", "`DIR` for local state")
	watch := f.Bool("watch", false, "rebuild and swap modules when their source changes")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 0 {
		hint := ""
		if _, _, err := net.SplitHostPort(f.Arg(0)); err == nil && embedded.on {
			hint = " (an address for the embedded broker goes after '=': --embedded-broker=" + f.Arg(0) + ")"
		}
		return f.usageError(stderr, "unexpected argument %q%s", f.Arg(0), hint)
	}
	if *file == "" {
		return f.usageError(stderr, "-c FILE is required")
	}

	overrides := make(map[string]string)
	setFlags := f.given()
	if setFlags["brokers"] {
		overrides["brokers"] = *brokers
	}
	if setFlags["http"] {
		overrides["http"] = *httpAddr
	}
	if setFlags["state-dir"] {
		overrides["state_dir"] = *stateDir
	}

	// The configuration is checked before the embedded broker starts, with
	// the address asked for standing in for the one the broker will get.
	if embedded.on && !setFlags["brokers"] {
		overrides["brokers"] = embedded.addr
	}
	cfg, err := config.Load(*file, overrides)
	if err != nil {
		printConfigError(stderr, "run", err)
		return exitFail
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if embedded.on {
		b, err := broker.Start(embedded.addr, logger)
		if err != nil {
			fmt.Fprintf(stderr, "streamrt run: %v\n", err)
			return exitFail
		}
		defer b.Close()
		if !setFlags["brokers"] && !cfg.Given("state_dir") {
			// The broker's data is gone at exit: state kept past it would
			// count on from offsets the next broker never had (a second
			// quick start would print 4 clicks, not 2). Keep it for this
			// run only; the compiled modules' cache stays.
			tmp, err := os.MkdirTemp("", "streamrt-"+cfg.App+"-state-")
			if err != nil {
				fmt.Fprintf(stderr, "streamrt run: state directory: %v\n", err)
				return exitFail
			}
			defer os.RemoveAll(tmp)
			cfg.StateDir = tmp
			logger.Info("state is kept for this run only, like the embedded broker's data (set state_dir to keep it)", "state_dir", tmp)
		}
		if !setFlags["brokers"] {
			cfg.Brokers = []string{b.Addr()} // the port, if 0 was asked for
			// The broker starts empty, and the app refuses a table whose
			// topic is missing: give each table an empty topic to start.
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := streamrt.CreateTableTopics(tctx, cfg, logger.With("component", "embedded-broker"))
			cancel()
			if err != nil {
				fmt.Fprintf(stderr, "streamrt run: embedded broker: tables: %v\n", err)
				return exitFail
			}
		}
	}

	rt, err := streamrt.New(cfg, streamrt.Options{Logger: logger, Watch: *watch})
	if err != nil {
		fmt.Fprintf(stderr, "streamrt run: %v\n", err)
		return exitFail
	}
	err = rt.Run(ctx)
	if err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		fmt.Fprintf(stderr, "streamrt run: %v\n", err)
		return exitFail
	}
	return exitOK
}

// printConfigError prints one configuration problem on one line, or several
// indented under a heading.
func printConfigError(w io.Writer, command string, err error) {
	msg := err.Error()
	if !strings.Contains(msg, "\n") {
		fmt.Fprintf(w, "streamrt %s: %s\n", command, msg)
		return
	}
	fmt.Fprintf(w, "streamrt %s: invalid configuration:\n  %s\n", command, strings.ReplaceAll(msg, "\n", "\n  "))
}
