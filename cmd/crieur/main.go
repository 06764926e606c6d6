// Command crieur publishes a folder of Markdown articles on the web and to the
// fediverse from one ActivityPub bot actor. This package is the composition
// root: it parses configuration once, builds storage → posts → federation →
// web in that order, and runs the subcommands. It holds no logic of its own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/crieur/crieur/federation/signature"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			printError(os.Stderr, err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks errors whose message was already printed (flag errors,
// problems listed by check).
var errUsage = errors.New("usage")

// printError writes err as the one line crieur ends with. Errors quote
// remote servers and file names: termSafe keeps them on that line and off
// the terminal's controls.
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "crieur:", termSafe(err.Error()))
}

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

const usage = `crieur publishes a folder of Markdown articles on the web and in the fediverse.

Usage:
  crieur serve     [flags]   run the server (web pages, ActivityPub, delivery)
  crieur check     [flags]   validate the posts folder and print every problem
  crieur queue     [flags] [retry [HOST]]   show the delivery queue (pending, retrying,
                             failed, per host), or give failed deliveries another 48 hours
  crieur followers [flags] [list | remove ACTOR | pending | approve ACTOR | reject ACTOR]
  crieur publish   [flags] -dry-run | -again SLUG/LANG
  crieur status    [flags] [SLUG/LANG]   delivery status of articles, and their replies,
                             likes, boosts and quotes
  crieur inbox     [flags] [-n N] [SLUG/LANG]   the latest replies, mentions, likes, boosts
                             and quotes received, per article, with links
  crieur bench     [flags]   fan-out benchmark on loopback
  crieur key       [flags] show | rotate   the actor key: its fingerprint, or a new key
                             (with crieur serve stopped), announced to followers on the next start
  crieur blocks    [flags] [list | add TARGET | remove TARGET | import FILE.csv | export]
                             block a domain (with its subdomains) or an actor, at once
  crieur replies   [flags] [waiting | hide ID | show ID | approve ID]   moderate replies
  crieur reports   [flags]   reports (Flag) other servers sent about crieur's posts
  crieur backup    [flags] [-o FILE|-]   one archive of the database and the key, taken
                             while crieur serve runs or not
  crieur restore   [flags] [-force] FILE|-   put a backup back (crieur serve stopped); the
                             files it replaces are kept aside
  crieur version

Every flag has an environment variable (see crieur serve -h and README.md).
`

// run is crieur's whole life, callable from tests: args without the program
// name, getenv for the environment, stdout for results, stderr for usage.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "check":
		return runCheck(rest, getenv, stdout, stderr)
	case "queue":
		return runQueue(ctx, rest, getenv, stdout, stderr)
	case "followers":
		return runFollowers(ctx, rest, getenv, stdout, stderr)
	case "publish":
		return runPublish(ctx, rest, getenv, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, getenv, stdout, stderr)
	case "inbox":
		return runInbox(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "key":
		return runKey(ctx, rest, getenv, stdout, stderr)
	case "blocks":
		return runBlocks(ctx, rest, getenv, stdout, stderr)
	case "replies":
		return runReplies(ctx, rest, getenv, stdout, stderr)
	case "reports":
		return runReports(ctx, rest, getenv, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, getenv, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "crieur", version)
		printEngine(stdout, getenv("CRIEUR_RSA"))
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "crieur: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

// printEngine says what crieur serve would sign with on this machine with
// CRIEUR_RSA set to setting (empty: auto).
func printEngine(w io.Writer, setting string) {
	engine, err := signature.ParseRSAEngine(setting)
	if err != nil {
		fmt.Fprintf(w, "RSA signatures: CRIEUR_RSA: %v\n", err)
		return
	}
	if engine == signature.RSAGo {
		fmt.Fprintln(w, "RSA signatures: Go crypto/rsa (CRIEUR_RSA=go)")
		return
	}
	v, err := signature.OpenSSL()
	switch {
	case err == nil:
		fmt.Fprintf(w, "RSA signatures: %s (libcrypto.so.3)\n", v)
	case engine == signature.RSAOpenSSL:
		fmt.Fprintf(w, "RSA signatures: none: CRIEUR_RSA=openssl, and OpenSSL cannot load (%v); crieur serve will not start\n", err)
	default:
		fmt.Fprintf(w, "RSA signatures: Go crypto/rsa (no OpenSSL: %v)\n", err)
	}
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"
