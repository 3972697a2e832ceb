package kubernetes

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// baselineBytes is the shim's resident memory under load without v2 data
// (BENCHMARKS.md), which the read cache adds to.
const baselineBytes = 48 << 20

type manifests struct {
	services []corev1.Service
	sts      []appsv1.StatefulSet
	pdbs     []policyv1.PodDisruptionBudget
}

// load decodes every document of every manifest strictly: an unknown field
// (a typo, a field of another API version) fails the test.
func load(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var m manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch tm.APIVersion + "/" + tm.Kind {
			case "v1/Service":
				m.services = append(m.services, corev1.Service{})
				obj = &m.services[len(m.services)-1]
			case "apps/v1/StatefulSet":
				m.sts = append(m.sts, appsv1.StatefulSet{})
				obj = &m.sts[len(m.sts)-1]
			case "policy/v1/PodDisruptionBudget":
				m.pdbs = append(m.pdbs, policyv1.PodDisruptionBudget{})
				obj = &m.pdbs[len(m.pdbs)-1]
			default:
				t.Fatalf("%s document %d: unexpected kind %s/%s", f, i, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, tm.Kind, err)
			}
		}
	}
	return m
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// shimFlags parses the shim container's args with the shim's own flag set,
// so a misspelt or removed flag fails here.
func shimFlags(t *testing.T, c corev1.Container) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("etcdshim", pflag.ContinueOnError)
	config.RegisterFlags(fs, config.Default())
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("the shim's args do not parse: %v", err)
	}
	return fs
}

func flagValue(t *testing.T, fs *pflag.FlagSet, name string) string {
	t.Helper()
	f := fs.Lookup(name)
	if f == nil || !f.Changed {
		t.Fatalf("the shim is not given --%s", name)
	}
	return f.Value.String()
}

func TestManifests(t *testing.T) {
	m := load(t)
	if len(m.sts) != 1 || len(m.pdbs) != 1 {
		t.Fatalf("want one StatefulSet and one PodDisruptionBudget, have %d and %d", len(m.sts), len(m.pdbs))
	}
	sts := m.sts[0]
	pod := sts.Spec.Template.Spec
	etcd, shim := container(t, pod, "etcd"), container(t, pod, "etcdshim")
	fs := shimFlags(t, shim)

	t.Run("rolling update", func(t *testing.T) {
		if sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
			t.Fatalf("update strategy %q: the procedure is a plain RollingUpdate", sts.Spec.UpdateStrategy.Type)
		}
	})

	t.Run("preStop drains through the shim", func(t *testing.T) {
		admin, err := url.Parse(flagValue(t, fs, "listen-admin-url"))
		if err != nil {
			t.Fatal(err)
		}
		if err := config.CheckAdminURL(admin.String()); err != nil {
			t.Fatalf("--listen-admin-url %s: %v", admin, err)
		}
		port, _ := strconv.Atoi(admin.Port())
		for _, c := range []corev1.Container{etcd, shim} {
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.HTTPGet == nil {
				t.Fatalf("container %s has no httpGet preStop hook", c.Name)
			}
			h := c.Lifecycle.PreStop.HTTPGet
			// Without host the kubelet connects to the pod IP, where the
			// loopback-only admin listener does not answer.
			if h.Host != admin.Hostname() || h.Port != intstr.FromInt32(int32(port)) || h.Path != "/prestop" {
				t.Fatalf("container %s preStop %s:%s%s, want %s:%d/prestop", c.Name, h.Host, h.Port.String(), h.Path, admin.Hostname(), port)
			}
		}
		grace := int64(0)
		if p := pod.TerminationGracePeriodSeconds; p != nil {
			grace = *p
		}
		drain := mustDuration(t, flagValue(t, fs, "drain-timeout"))
		shutdown := mustDuration(t, flagValue(t, fs, "shutdown-timeout"))
		if float64(grace) <= drain+shutdown {
			t.Fatalf("terminationGracePeriodSeconds %d does not cover --drain-timeout (%vs) and --shutdown-timeout (%vs): the kubelet would kill the pod mid-drain", grace, drain, shutdown)
		}
	})

	t.Run("etcd probes and resources", func(t *testing.T) {
		for name, p := range map[string]*corev1.Probe{"readiness": etcd.ReadinessProbe, "liveness": etcd.LivenessProbe, "startup": etcd.StartupProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Fatalf("etcd has no %s httpGet probe", name)
			}
			if !strings.HasPrefix(p.HTTPGet.Path, "/") || p.HTTPGet.Port.IntValue() == 0 {
				t.Fatalf("etcd %s probe %+v", name, p.HTTPGet)
			}
		}
		if etcd.ReadinessProbe.HTTPGet.Path != "/readyz" || etcd.LivenessProbe.HTTPGet.Path != "/livez" {
			t.Fatalf("etcd probes %s / %s, want /readyz and /livez", etcd.ReadinessProbe.HTTPGet.Path, etcd.LivenessProbe.HTTPGet.Path)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := etcd.Resources.Requests[r]; !ok {
				t.Fatalf("etcd has no %s request", r)
			}
		}
		if _, ok := etcd.Resources.Limits[corev1.ResourceMemory]; !ok {
			t.Fatal("etcd has no memory limit")
		}
	})

	t.Run("disruption budget", func(t *testing.T) {
		pdb := m.pdbs[0]
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Fatalf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(sts.Spec.Template.Labels)) {
			t.Fatalf("the PodDisruptionBudget's selector %v does not select the etcd pods: %v", pdb.Spec.Selector, err)
		}
	})

	t.Run("pinned images", func(t *testing.T) {
		for _, c := range pod.Containers {
			ref := c.Image
			if i := strings.LastIndex(ref, "/"); i >= 0 {
				ref = ref[i+1:]
			}
			tag := ""
			if i := strings.LastIndex(ref, ":"); i >= 0 {
				tag = ref[i+1:]
			}
			if !strings.Contains(c.Image, "@sha256:") && (tag == "" || tag == "latest") {
				t.Fatalf("container %s image %q is not pinned", c.Name, c.Image)
			}
		}
	})

	t.Run("TLS from Secrets, reloadable", func(t *testing.T) {
		secretVolumes := map[string]bool{}
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				secretVolumes[v.Name] = true
			}
		}
		check := func(c corev1.Container, files []string) {
			for _, f := range files {
				found := false
				for _, vm := range c.VolumeMounts {
					if strings.HasPrefix(f, strings.TrimSuffix(vm.MountPath, "/")+"/") {
						found = true
						if !secretVolumes[vm.Name] {
							t.Fatalf("container %s: %s is not on a Secret volume", c.Name, f)
						}
						// A subPath mount is never updated: rotation would need a restart.
						if vm.SubPath != "" {
							t.Fatalf("container %s mounts %s with subPath", c.Name, vm.Name)
						}
					}
				}
				if !found {
					t.Fatalf("container %s: %s is on no volume", c.Name, f)
				}
			}
		}
		var etcdFiles []string
		for _, a := range etcd.Command {
			for _, flag := range []string{"--cert-file=", "--key-file=", "--trusted-ca-file=", "--peer-cert-file=", "--peer-key-file=", "--peer-trusted-ca-file="} {
				if v, ok := strings.CutPrefix(a, flag); ok {
					etcdFiles = append(etcdFiles, v)
				}
			}
		}
		if len(etcdFiles) != 6 {
			t.Fatalf("etcd has %d of the 6 TLS file flags", len(etcdFiles))
		}
		check(etcd, etcdFiles)
		var shimFiles []string
		for _, f := range []string{"cert-file", "key-file", "trusted-ca-file", "cert", "key", "cacert"} {
			shimFiles = append(shimFiles, flagValue(t, fs, f))
		}
		check(shim, shimFiles)
		for _, raw := range strings.Split(flagValue(t, fs, "endpoints"), ",") {
			if !strings.HasPrefix(strings.Trim(raw, "[]"), "https://") {
				t.Fatalf("endpoint %s is not TLS", raw)
			}
		}
	})

	t.Run("shim memory bounds", func(t *testing.T) {
		limit, ok := shim.Resources.Limits[corev1.ResourceMemory]
		if !ok {
			t.Fatal("the shim has no memory limit")
		}
		cache, err := strconv.ParseInt(flagValue(t, fs, "v2-read-cache-max-bytes"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		var gomemlimit int64
		for _, e := range shim.Env {
			if e.Name == "GOMEMLIMIT" {
				q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
				if err != nil {
					t.Fatalf("GOMEMLIMIT %q: %v", e.Value, err)
				}
				gomemlimit = q.Value()
			}
		}
		if gomemlimit == 0 {
			t.Fatal("the shim has no GOMEMLIMIT")
		}
		if cache+baselineBytes >= gomemlimit || gomemlimit >= limit.Value() {
			t.Fatalf("read cache %d + baseline %d must stay under GOMEMLIMIT %d, itself under the limit %d", cache, baselineBytes, gomemlimit, limit.Value())
		}
	})
}

func mustDuration(t *testing.T, s string) float64 {
	t.Helper()
	d, err := timeParse(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func timeParse(s string) (float64, error) {
	d, err := time.ParseDuration(s)
	return d.Seconds(), err
}
