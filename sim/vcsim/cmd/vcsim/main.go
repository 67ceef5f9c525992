// Command vcsim runs govmomi's vSphere API simulator (with hcc's overlay) until SIGINT/SIGTERM.
//
// Flags follow govmomi's own vcsim program: -l, -esx, -dc, -cluster, -host, -standalone-host,
// -vm, -ds, -pool, -app, -folder, -pg, -autostart, -username, -password, -tls, -tlscert, -tlskey.
// When the server listens it prints one line to stdout:
//
//	export GOVC_URL=https://user:pass@127.0.0.1:PORT/sdk GOVC_SIM_PID=PID
//
// On SIGINT/SIGTERM it removes the datastore directories it created (under $TMPDIR) and exits 0.
// With -stdinexit it does the same when its standard input closes (its parent died), and
// -cleanup-dir DIR is removed as well (the launcher's private working directory).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	model := simulator.VPX()

	flag.IntVar(&model.Datacenter, "dc", model.Datacenter, "datacenters")
	flag.IntVar(&model.Cluster, "cluster", model.Cluster, "clusters per datacenter")
	flag.IntVar(&model.ClusterHost, "host", model.ClusterHost, "hosts per cluster")
	flag.IntVar(&model.Host, "standalone-host", model.Host, "standalone hosts per datacenter")
	flag.IntVar(&model.Datastore, "ds", model.Datastore, "local datastores")
	flag.IntVar(&model.Machine, "vm", model.Machine, "virtual machines per resource pool")
	flag.IntVar(&model.Pool, "pool", model.Pool, "resource pools per cluster")
	flag.IntVar(&model.App, "app", model.App, "vApps per cluster")
	flag.IntVar(&model.Folder, "folder", model.Folder, "folders")
	flag.IntVar(&model.Portgroup, "pg", model.Portgroup, "distributed port groups per datacenter")
	flag.BoolVar(&model.Autostart, "autostart", model.Autostart, "power on the model's VMs")
	isESX := flag.Bool("esx", false, "simulate a standalone ESXi host instead of vCenter")
	isTLS := flag.Bool("tls", true, "serve HTTPS")
	certFile := flag.String("tlscert", "", "TLS certificate (PEM); default: Go's test certificate")
	keyFile := flag.String("tlskey", "", "TLS key (PEM)")
	listen := flag.String("l", "127.0.0.1:8989", "listen address (port 0: any free port)")
	user := flag.String("username", "", "the only accepted user name (default: any)")
	pass := flag.String("password", "", "the only accepted password (default: any)")
	flag.BoolVar(&simulator.Trace, "trace", false, "trace SOAP calls to stderr")
	stdinExit := flag.Bool("stdinexit", false, "exit when standard input closes or has input")
	cleanupDir := flag.String("cleanup-dir", "", "a directory to remove on exit")
	flag.Parse()

	if *isESX {
		esx := simulator.ESX()
		esx.Datastore = model.Datastore
		esx.Machine = model.Machine
		esx.Autostart = model.Autostart
		model = esx
	}
	model.ServiceContent.About.FullName += " (govmomi simulator, hcc overlay)"

	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		model.Remove()
		if *cleanupDir != "" {
			_ = os.RemoveAll(*cleanupDir)
		}
	}()

	u := &url.URL{Host: *listen}
	if *user != "" {
		u.User = url.UserPassword(*user, *pass)
	}
	model.Service.Listen = u
	if *isTLS {
		model.Service.TLS = new(tls.Config)
		if *certFile != "" {
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				log.Fatal(err)
			}
			model.Service.TLS.Certificates = []tls.Certificate{cert}
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if *stdinExit {
		go func() {
			_, _ = os.Stdin.Read(make([]byte, 1)) // EOF when the parent is gone
			sig <- syscall.SIGTERM
		}()
	}

	server := model.Service.NewServer()
	defer server.Close()
	fmt.Printf("export GOVC_URL=%s GOVC_SIM_PID=%d\n", server.URL, os.Getpid())
	_ = os.Stdout.Sync()

	<-sig
}
