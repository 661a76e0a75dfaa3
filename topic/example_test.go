package topic_test

import (
	"context"
	"fmt"

	"github.com/gridmap/gridmap"
	"github.com/gridmap/gridmap/topic"
)

// Publish and subscribe: every subscriber, on every member, receives every message in the one
// order the topic's owner numbered them.
func Example() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)

	type command struct {
		Name  string
		Rate  int
		Until string
	}
	commands, err := topic.New[command](member.Topics(), "command")
	if err != nil {
		fmt.Println(err)
		return
	}
	sub, err := commands.Subscribe(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	commands.Publish(ctx, command{Name: "start", Rate: 50})
	commands.Publish(ctx, command{Name: "stop"})
	for range 2 {
		m := <-sub.Messages()
		fmt.Println(m.Seq, m.Value.Name, m.Value.Rate)
	}
	// Output:
	// 1 start 50
	// 2 stop 0
}

// A reliable topic keeps its last messages on the owner and its backups: a subscriber that went
// away resumes where it stopped (here after two of three messages), on any member.
func Example_reliable() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)

	audit, err := topic.New(member.Topics(), "audit", topic.WithConfig[string](topic.Config{Reliable: true, RingCapacity: 1000}))
	if err != nil {
		fmt.Println(err)
		return
	}
	sub, err := audit.Subscribe(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range []string{"login alice", "login bob", "logout alice"} {
		audit.Publish(ctx, e)
	}
	for range 2 {
		fmt.Println((<-sub.Messages()).Value)
	}
	sub.Close()
	resume := sub.Next()

	audit.Publish(ctx, "logout bob") // while nobody listens
	again, err := audit.Subscribe(ctx, topic.FromSequence(resume))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer again.Close()
	for range 2 {
		m := <-again.Messages()
		fmt.Println(m.Seq, m.Value)
	}
	// Output:
	// login alice
	// login bob
	// 3 logout alice
	// 4 logout bob
}

// A tool that knows a topic by name only (a web console) publishes raw bytes; a Topic[string]
// or Topic[[]byte] reads them as they are.
func ExampleService_PublishBytes() {
	ctx := context.Background()
	member, err := gridmap.Start(ctx, gridmap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer member.Close(ctx)

	notes, _ := topic.New[string](member.Topics(), "notes")
	sub, err := notes.Subscribe(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()
	seq, err := member.Topics().PublishBytes(ctx, "notes", []byte("from the console"))
	fmt.Println(seq, err)
	fmt.Println((<-sub.Messages()).Value)
	// Output:
	// 1 <nil>
	// from the console
}
