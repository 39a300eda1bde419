package mupdatec_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"

	"github.com/imapfront/imapfront/mupdatec"
	"github.com/imapfront/imapfront/mupdatec/mupdatetest"
)

// A Follower keeps a Sink equal to the master; Sync gives read-your-writes.
func ExampleFollower() {
	master := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	addr, _ := master.Start()
	defer master.Close()
	master.Set(mupdatec.Entry{Name: "user.alice", Location: "be1!default", ACL: "alice\tlrswipkxtecdan\t"})

	sink := newMapSink()
	f := mupdatec.NewFollower(mupdatec.FollowerOptions{
		Addr: addr,
		Auth: func() (sasl.Client, error) { return sasl.NewPlainClient("", "mupdateuser", "mupdatepw"), nil },
		Sink: sink,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	f.WaitReady(ctx)
	master.Set(mupdatec.Entry{Name: "user.alice.Sent", Location: "be1!default", ACL: "alice\tlrswipkxtecdan\t"})
	f.Sync(ctx) // the change is in the sink when Sync returns
	fmt.Println(len(sink.snapshot()), f.Status().State)
	// Output: 2 streaming
}

// The safe helpers FIND first and refuse what would crash or corrupt a
// Cyrus 3.6 master.
func ExampleConn_SafeDelete() {
	master := mupdatetest.NewServer(mupdatetest.Options{Users: map[string]string{"mupdateuser": "mupdatepw"}})
	addr, _ := master.Start()
	defer master.Close()

	ctx := context.Background()
	c, err := mupdatec.Dial(ctx, addr, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if err := c.Authenticate(ctx, sasl.NewPlainClient("", "mupdateuser", "mupdatepw")); err != nil {
		fmt.Println(err)
		return
	}
	err = c.SafeDelete(ctx, "user.nosuch")
	fmt.Println(errors.Is(err, mupdatec.ErrNotFound), master.Crashes())
	// Output: true 0
}
