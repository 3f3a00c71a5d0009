//go:build tools

// Package helm pins the helm CLI that the end-to-end tests package, index and render charts with.
package helm

import _ "helm.sh/helm/v4/cmd/helm"
