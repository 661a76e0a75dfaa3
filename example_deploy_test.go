package gridmap_test

import (
	"context"
	"log"
	"net"
	"os"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/discovery"
)

// A member in a Kubernetes StatefulSet (deploy/k8s/gridmap.yaml): it listens on every interface,
// advertises its pod IP, and finds the other pods through the headless Service's DNS name, which
// resolves to every pod. (Not run: it needs the cluster's DNS; examples/member is the program.)
func Example_kubernetes() {
	ctx := context.Background()
	podIP := os.Getenv("POD_IP") // from the downward API: status.podIP
	m, err := gridmap.Start(ctx, gridmap.Config{
		Name:                os.Getenv("POD_NAME"),
		BindAddr:            "0.0.0.0:7000",
		AdvertiseAddr:       net.JoinHostPort(podIP, "7000"),
		GossipBindAddr:      "0.0.0.0:7946",
		GossipAdvertiseAddr: net.JoinHostPort(podIP, "7946"),
		Discovery:           discovery.DNS{Name: "gridmap.default.svc.cluster.local", Port: 7946},
		ExpectMembers:       3, // the StatefulSet's replicas, started together
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)
}

// A secured member on one of three hosts (docs/security.md): certificates from
// `gridmap-certs -dir certs -members 3 -hosts 10.0.0.1,10.0.0.2,10.0.0.3`, the gossip key and
// the join secret from the secret store. (Not run: it needs the three hosts.)
func Example_securedHosts() {
	ctx := context.Background()
	i := os.Getenv("HOST_INDEX")                         // 1, 2 or 3
	gossipKey := []byte(os.Getenv("GRIDMAP_GOSSIP_KEY")) // 16, 24 or 32 bytes
	joinSecret := os.Getenv("GRIDMAP_JOIN_SECRET")
	// On host i (1, 2, 3):
	m, err := gridmap.Start(ctx, gridmap.Config{
		BindAddr:       "10.0.0." + i + ":7000",
		GossipBindAddr: "10.0.0." + i + ":7946",
		Seeds:          []string{"10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"},
		ExpectMembers:  3,
		Security: gridmap.Security{
			TLS: gridmap.TLSConfig{
				CertFile: "certs/member-" + i + ".pem", // reloaded when the file changes
				KeyFile:  "certs/member-" + i + "-key.pem",
				CAFile:   "certs/ca.pem",
			},
			GossipKeys:  [][]byte{gossipKey}, // 16, 24 or 32 bytes; the first one encrypts
			ClusterName: "crash-reports",
			JoinSecret:  joinSecret, // at least 16 bytes
		},
	})
	// errors.Is(err, gridmap.ErrJoinRefused): the cluster refused this member's settings.
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close(ctx)
}
