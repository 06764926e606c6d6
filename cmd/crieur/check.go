package main

import (
	"fmt"
	"io"
	"time"

	"github.com/crieur/crieur/articles"
)

// runCheck validates the posts folder the way serve would load it and
// prints every problem, so an editor can fix articles before publishing.
func runCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := parseConfig("check", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	lib, err := articles.Load(cfg.PostsDir, articles.Options{DefaultLanguage: cfg.Language})
	if err != nil {
		return err
	}
	now := time.Now()
	all := lib.All()
	visible := len(lib.Visible(now))
	fmt.Fprintf(stdout, "%s: %d articles (%d published, %d scheduled)\n", termSafe(cfg.PostsDir), len(all), visible, len(all)-visible)
	probs := lib.Problems()
	for _, p := range probs {
		fmt.Fprintln(stdout, termSafe(p.Error()))
	}
	if len(probs) > 0 {
		fmt.Fprintf(stdout, "%d problem(s): those files are not published\n", len(probs))
		return fmt.Errorf("%w: %d problem(s) in %s", errUsage, len(probs), cfg.PostsDir)
	}
	fmt.Fprintln(stdout, "no problems")
	return nil
}
