// Package deploy holds no code: it is the home of the deployment files
// (Prometheus, Grafana and Jaeger configuration, the Kubernetes base in
// k8s/) and of the tests that check them, together with the Dockerfile
// and docker-compose.yml at the root, against the code they deploy:
// every service has an instance with a healthcheck and a memory limit,
// every image is pinned, every Kubernetes manifest decodes strictly into
// the API types, and the containers run as non-root.
package deploy

// The files that list the services (docker-compose.yml, the Dockerfile,
// k8s/<service>.yaml, k8s/kustomization.yaml, k8s/networkpolicy.yaml and
// prometheus/resilience.rules.yml) are generated from services/catalog.go
// and the templates in templates/ by cmd/gen: `make generate`.

//go:generate go run ./cmd/gen
