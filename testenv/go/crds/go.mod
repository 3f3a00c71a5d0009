module fluxd.dev/testenv/crds

go 1.24.0

// Not built: the tests read the CRD manifests these modules ship
// (see tests/support/crds_thirdparty.py). Versions as Reloader v1.4.21 uses.
require (
	github.com/argoproj/argo-rollouts v1.9.0
	sigs.k8s.io/secrets-store-csi-driver v1.5.5
)
