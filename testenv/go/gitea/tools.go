//go:build tools

// Package gitea pins the real Gitea server, which the Gitea end-to-end tests,
// the demo and the push benchmark run as the Git server and webhook sender.
package gitea

import (
	_ "gitea.dev"
)
