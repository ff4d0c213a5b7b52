// controlplane runs a whole Kubernetes control plane in one process on loopback, for node-fleet's
// tests: embedded etcd, kube-apiserver (RBAC, a static admin token, ServiceAccount tokens),
// kube-controller-manager and kube-scheduler, all built from one Kubernetes release's own Go
// modules, since no prebuilt binary can be downloaded where the tests run.
//
//	controlplane -dir DIR -port PORT [-kcm-arg=--flag=value ...]
//
// It writes into DIR the admin token (admin.token), a kubeconfig for it (kubeconfig), the
// serving CA (the apiserver's self-signed bundle, certs/apiserver.crt) and, once the API server
// answers /readyz and the controller manager and scheduler run, the file `ready`; it prints
// "ready" on stdout then. SIGTERM or SIGINT stops it.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	logsapi "k8s.io/component-base/logs/api/v1"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// The controllers node-fleet's tests lean on: PDB status for evictions, ReplicaSets and
// Deployments for owned pods, ServiceAccounts and their tokens for RBAC, node lifecycle,
// garbage collection of owned objects, namespace deletion, PV/PVC binding and pod GC.
const controllers = "disruption,replicaset,deployment,serviceaccount,serviceaccount-token," +
	"nodelifecycle,garbagecollector,namespace,persistentvolume-binder,podgc"

type argList []string

func (a *argList) String() string     { return strings.Join(*a, " ") }
func (a *argList) Set(v string) error { *a = append(*a, v); return nil }

func main() {
	dir := flag.String("dir", "", "directory for the datastore, certificates, token and kubeconfig (required)")
	port := flag.Int("port", 6443, "the API server's secure port on 127.0.0.1")
	var kcmArgs argList
	flag.Var(&kcmArgs, "kcm-arg", "extra kube-controller-manager flag (repeatable)")
	flag.Parse()
	if *dir == "" {
		fail(fmt.Errorf("-dir is required"))
	}
	if err := run(*dir, *port, kcmArgs); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "controlplane:", err)
	os.Exit(1)
}

func run(dir string, port int, kcmArgs []string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	token, err := randomHex(16)
	if err != nil {
		return err
	}
	saKey := filepath.Join(dir, "sa.key")
	tokenFile := filepath.Join(dir, "tokens.csv")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	caFile := filepath.Join(certDir, "apiserver.crt")
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := writeServiceAccountKey(saKey); err != nil {
		return err
	}
	// system:masters: the admin the tests act as, and the identity of the controller manager
	// and the scheduler (they need no narrower one here).
	files := map[string]string{
		filepath.Join(dir, "admin.token"): token,
		tokenFile:                         fmt.Sprintf("%s,admin,admin,system:masters\n", token),
		kubeconfig:                        kubeconfigYAML(server, caFile, token),
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return err
		}
	}

	etcdURL, err := startEtcd(filepath.Join(dir, "etcd"))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	// Each component applies its logging configuration; the same one, applied again, is no error.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	// The controller manager's options change a feature gate's default, which only works before
	// any component has added the (process-wide) gates to its flags: it is made first.
	kcm := controllermanager.NewControllerManagerCommand()
	schedulerOpts := scheduleroptions.NewOptions()
	errs := make(chan error, 3)
	api := apiserver.NewAPIServerCommand()
	api.SetArgs([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + certDir,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// ServiceAccount: a pod without one would be refused until the serviceaccount controller
		// has made the namespace's `default` one, a race for every test namespace.
		// TaintNodesByCondition: tests register Nodes already Ready; with it each would carry
		// node.kubernetes.io/not-ready until the node lifecycle controller got round to it.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--enable-priority-and-fairness=false",
		// The `kubernetes` Service's endpoints may not be a loopback address.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	})
	// Errors go to the log; the usage text would bury them.
	api.SilenceUsage = true
	go func() { errs <- wrap("kube-apiserver", api.Execute()) }()
	// The apiserver's command installed the process's signal handler: its context ends on SIGTERM.
	ctx := api.Context()

	if err := waitReady(ctx, server, token, errs); err != nil {
		return err
	}

	kcmPort, err := freePort()
	if err != nil {
		return err
	}
	kcm.SetArgs(append([]string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--leader-elect=false",
		"--controllers=" + controllers,
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + caFile,
		// The default 20 requests/s would make a test with a thousand objects wait on its controllers.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--profiling=false",
	}, kcmArgs...))
	kcm.SilenceUsage = true
	go func() { errs <- wrap("kube-controller-manager", kcm.Execute()) }()

	schedPort, err := freePort()
	if err != nil {
		return err
	}
	go func() {
		errs <- wrap("kube-scheduler", runScheduler(ctx, schedulerOpts, []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", schedPort),
			"--leader-elect=false",
			"--kube-api-qps=500",
			"--kube-api-burst=1000",
			"--profiling=false",
		}))
	}()

	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(server+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("ready %s kubeconfig=%s\n", server, kubeconfig)

	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
		return nil
	}
}

// runScheduler is kube-scheduler's command without its own signal handler: the apiserver's
// command has installed the process's one, and a second would panic.
func runScheduler(ctx context.Context, opts *scheduleroptions.Options, args []string) error {
	fs := pflag.NewFlagSet("kube-scheduler", pflag.ContinueOnError)
	for _, set := range opts.Flags.FlagSets {
		fs.AddFlagSet(set)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := scheduler.Setup(ctx, opts)
	if err != nil {
		return err
	}
	return scheduler.Run(ctx, cc, sched)
}

func wrap(component string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped", component)
	}
	return fmt.Errorf("%s: %w", component, err)
}

func startEtcd(dataDir string) (string, error) {
	clientPort, err := freePort()
	if err != nil {
		return "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", err
	}
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg := embed.NewConfig()
	cfg.Dir = dataDir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	// A throwaway datastore: durability buys nothing and fsync costs every write.
	cfg.UnsafeNoFsync = true
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", err
	}
	select {
	case <-etcd.Server.ReadyNotify():
		return client.String(), nil
	case <-time.After(60 * time.Second):
		etcd.Close()
		return "", fmt.Errorf("not ready after 60 s")
	}
}

func waitReady(ctx context.Context, server, token string, errs <-chan error) error {
	// The serving certificate is checked by the clients the tests use; here only readiness matters.
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver: /readyz not OK after 3 minutes")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func writeServiceAccountKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

func kubeconfigYAML(server, caFile, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: controlplane
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: controlplane
  context:
    cluster: controlplane
    user: admin
current-context: controlplane
`, server, caFile, token)
}
