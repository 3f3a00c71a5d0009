//go:build tools

// Package registry pins the CNCF distribution registry that the OCIRepository tests pull from.
package registry

import _ "github.com/distribution/distribution/v3/cmd/registry"
