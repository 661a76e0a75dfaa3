package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// k8sObject is the part of a Kubernetes manifest the checks below read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		// Service, PodDisruptionBudget and StatefulSet fields, all in one struct.
		ClusterIP                string         `yaml:"clusterIP"`
		PublishNotReadyAddresses bool           `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]any `yaml:"selector"`
		Ports                    []k8sPort      `yaml:"ports"`
		MaxUnavailable           int            `yaml:"maxUnavailable"`
		ServiceName              string         `yaml:"serviceName"`
		Replicas                 int            `yaml:"replicas"`
		Template                 k8sPodTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
		Containers                    []struct {
			Name           string    `yaml:"name"`
			Image          string    `yaml:"image"`
			Ports          []k8sPort `yaml:"ports"`
			ReadinessProbe k8sProbe  `yaml:"readinessProbe"`
			LivenessProbe  k8sProbe  `yaml:"livenessProbe"`
			Env            []struct {
				Name  string `yaml:"name"`
				Value string `yaml:"value"`
			} `yaml:"env"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

// TestKubernetesManifest lints deploy/k8s/gridmap.yaml (no manifest linter or API server is at
// hand in CI): every document parses strictly, and the manifest agrees with this program and
// with itself: a headless Service that publishes not-ready pods, the StatefulSet governed by it,
// selectors that match the pods, the ports the program binds by default, GRIDMAP_DNS naming
// the Service, GRIDMAP_EXPECT equal to the replicas, and only environment variables the program
// reads.
func TestKubernetesManifest(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/k8s/gridmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"POD_NAMESPACE": true, "GOMEMLIMIT": true}
	for _, m := range regexp.MustCompile(`"(GRIDMAP_[A-Z_]+)"`).FindAllSubmatch(src, -1) {
		known[string(m[1])] = true
	}

	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("deploy/k8s/gridmap.yaml: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("a document lacks apiVersion, kind or metadata.name: %+v", o)
		}
		objs[o.Kind] = o
	}
	svc, sts, pdb := objs["Service"], objs["StatefulSet"], objs["PodDisruptionBudget"]
	if svc.Kind == "" || sts.Kind == "" || pdb.Kind == "" {
		t.Fatalf("want a Service, a StatefulSet and a PodDisruptionBudget; got %v", keys(objs))
	}
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service: clusterIP %q, publishNotReadyAddresses %v; want a headless Service that publishes not-ready pods", svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
	}
	if sts.Spec.ServiceName != svc.Metadata.Name {
		t.Errorf("StatefulSet serviceName %q, Service %q", sts.Spec.ServiceName, svc.Metadata.Name)
	}
	labels := sts.Spec.Template.Metadata.Labels
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			t.Errorf("Service selector %s=%v does not match the pod labels %v", k, v, labels)
		}
	}
	if pdb.Spec.MaxUnavailable != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %d, want 1", pdb.Spec.MaxUnavailable)
	}
	if c := sts.Spec.Template.Spec.Containers; len(c) == 1 && (c[0].ReadinessProbe.HTTPGet.Path != "/readyz" || c[0].LivenessProbe.HTTPGet.Path != "/livez") {
		t.Errorf("probes: readiness %q, liveness %q; want /readyz and /livez", c[0].ReadinessProbe.HTTPGet.Path, c[0].LivenessProbe.HTTPGet.Path)
	}
	if sts.Spec.Template.Spec.TerminationGracePeriodSeconds < 60 {
		t.Errorf("terminationGracePeriodSeconds %d: too short for the hand-off", sts.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	svcPorts := map[string]k8sPort{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = p
	}
	want := map[string]k8sPort{"member": {Port: 7000, Protocol: "TCP"}, "gossip-tcp": {Port: 7946, Protocol: "TCP"}, "gossip-udp": {Port: 7946, Protocol: "UDP"}}
	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(sts.Spec.Template.Spec.Containers))
	}
	c := sts.Spec.Template.Spec.Containers[0]
	cPorts := map[string]k8sPort{}
	for _, p := range c.Ports {
		cPorts[p.Name] = p
	}
	for name, w := range want {
		if p := svcPorts[name]; p.Port != w.Port || p.Protocol != w.Protocol {
			t.Errorf("Service port %s: %+v, want %d/%s", name, p, w.Port, w.Protocol)
		}
		if p := cPorts[name]; p.ContainerPort != w.Port || p.Protocol != w.Protocol {
			t.Errorf("container port %s: %+v, want %d/%s", name, p, w.Port, w.Protocol)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if !known[e.Name] {
			t.Errorf("env %s: the program does not read it", e.Name)
		}
		env[e.Name] = e.Value
	}
	if !strings.HasPrefix(env["GRIDMAP_DNS"], svc.Metadata.Name+".") {
		t.Errorf("GRIDMAP_DNS %q does not name the Service %q", env["GRIDMAP_DNS"], svc.Metadata.Name)
	}
	if env["GRIDMAP_EXPECT"] != "" && env["GRIDMAP_EXPECT"] != strconv.Itoa(sts.Spec.Replicas) {
		t.Errorf("GRIDMAP_EXPECT %q, replicas %d", env["GRIDMAP_EXPECT"], sts.Spec.Replicas)
	}
	for _, v := range []string{"GRIDMAP_NAME", "GRIDMAP_ADVERTISE_HOST", "GRIDMAP_DNS"} {
		if _, ok := env[v]; !ok {
			t.Errorf("env %s missing", v)
		}
	}
	if _, err := config(func(k string) string {
		if k == "GRIDMAP_DNS" {
			return "gridmap.default.svc.cluster.local"
		}
		if k == "GRIDMAP_ADVERTISE_HOST" {
			return "10.0.0.1"
		}
		return env[k]
	}, nil); err != nil {
		t.Errorf("the manifest's environment does not make a valid Config: %v", err)
	}
}

// TestDockerfile: the image builds this program and exposes the ports it binds by default.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"./examples/member", "EXPOSE 7000/tcp 7946/tcp 7946/udp", "ENTRYPOINT"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("deploy/Dockerfile lacks %q", want)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
