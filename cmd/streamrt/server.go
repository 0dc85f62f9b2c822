package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/streamrt/streamrt/cmd/streamrt/internal/broker"
	streamrt "github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/config"
)

func cmdServer(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("server", "server [-c FILE] [flags]", `Run a server instance that hosts every app deployed to the cluster through
the control topics (streamrt deploy), until interrupted. Apps' APIs are
served under /apps/NAME/, the admin API under /v1/admin/.

The flags override the file's keys, which the environment's STREAMRT_<KEY>
variables override in turn. Admin tokens come from the file or from
STREAMRT_ADMIN_TOKENS (comma-separated), never from the command line.`)
	file := f.String("config", "", "the server's YAML config `FILE` (optional)")
	f.alias("c", "config")
	var embedded embeddedFlag
	f.Var(&embedded, "embedded-broker", "first start an in-memory Kafka-protocol broker on ADDR\n(default "+broker.DefaultAddr+"); brokers default to it.\nFor development only: its data is lost at exit")
	brokers := f.String("brokers", "", "Kafka seed brokers, a comma-separated `LIST` of host:port")
	httpAddr := f.String("http", "", "listen `ADDR` (host:port) for the apps' and admin APIs")
	stateDir := f.String("state-dir", "", "`DIR` for the apps' local state")
	instance := f.String("instance-id", "", "this instance's `NAME` in the status topic (default the advertised address)")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 0 {
		return f.usageError(stderr, "unexpected argument %q", f.Arg(0))
	}
	overrides := map[string]string{}
	given := f.given()
	for flag, v := range map[string]*string{"brokers": brokers, "http": httpAddr, "state-dir": stateDir, "instance-id": instance} {
		if given[flag] {
			overrides[strings.ReplaceAll(flag, "-", "_")] = *v
		}
	}
	if embedded.on && !given["brokers"] {
		overrides["brokers"] = embedded.addr
	}
	cfg, err := config.LoadServer(*file, overrides)
	if err != nil {
		printConfigError(stderr, "server", err)
		return exitFail
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if embedded.on {
		b, err := broker.Start(embedded.addr, logger)
		if err != nil {
			fmt.Fprintf(stderr, "streamrt server: %v\n", err)
			return exitFail
		}
		defer b.Close()
		if !given["brokers"] {
			cfg.Brokers = []string{b.Addr()}
		}
	}
	srv, err := streamrt.NewServer(cfg, streamrt.ServerOptions{Logger: logger})
	if err != nil {
		printConfigError(stderr, "server", err)
		return exitFail
	}
	if err := srv.Run(ctx); err != nil && !(ctx.Err() != nil && errors.Is(err, context.Canceled)) {
		fmt.Fprintf(stderr, "streamrt server: %v\n", err)
		return exitFail
	}
	return exitOK
}

// adminTimeout bounds one admin API call of the CLI.
const adminTimeout = 2 * time.Minute
