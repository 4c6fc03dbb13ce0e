package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CheckJetStream proves that the server at url runs JetStream with file
// storage: it creates a stream named stream on a subject of its own,
// publishes one event and is acknowledged, publishes it again under the
// same Nats-Msg-Id and is told it is a duplicate (the relay's retries
// depend on it), and reads it back through a consumer. When storeDir is
// not empty the stream's files must be under it.
func CheckJetStream(t testing.TB, url, stream, storeDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := nats.Connect(url, nats.Name("glasshouse-test"))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subject := stream + ".checked"
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{stream + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: time.Minute,
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", stream, err)
	}
	event := &nats.Msg{Subject: subject, Data: []byte(`{"event":"checked"}`), Header: nats.Header{}}
	event.Header.Set(jetstream.MsgIDHeader, "event-1")
	ack, err := js.PublishMsg(ctx, event)
	if err != nil {
		t.Fatalf("publish to %s: %v", subject, err)
	}
	if ack.Stream != stream || ack.Sequence != 1 || ack.Duplicate {
		t.Errorf("PubAck = %+v; want stream %s, sequence 1, not a duplicate", ack, stream)
	}
	again, err := js.PublishMsg(ctx, event)
	if err != nil {
		t.Fatalf("publish again: %v", err)
	}
	if !again.Duplicate || again.Sequence != 1 {
		t.Errorf("the same Nats-Msg-Id again: PubAck = %+v; want a duplicate of sequence 1", again)
	}
	consumer, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := consumer.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("read %s back: %v", subject, err)
	}
	if string(msg.Data()) != string(event.Data) || msg.Headers().Get(jetstream.MsgIDHeader) != "event-1" {
		t.Errorf("read back %q (Nats-Msg-Id %q); want %q (event-1)", msg.Data(), msg.Headers().Get(jetstream.MsgIDHeader), event.Data)
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Errorf("ack: %v", err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("stream info = %+v, %v; want 1 message", info, err)
	}
	if storeDir != "" {
		// nats-server keeps a stream of the default account in
		// STORE/jetstream/$G/streams/NAME.
		dir := filepath.Join(storeDir, "jetstream", "$G", "streams", stream)
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("stream %s is not stored under %s: %v", stream, storeDir, err)
		}
	}
}
