package preflight

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestRenderGolden(t *testing.T) {
	for name, sc := range scenarios() {
		r := Evaluate(mustTarget(sc.target), sc.facts)
		for _, format := range []string{"txt", "json"} {
			t.Run(name+"."+format, func(t *testing.T) {
				var buf bytes.Buffer
				var err error
				if format == "json" {
					err = WriteJSON(&buf, r)
				} else {
					err = WriteText(&buf, r)
				}
				if err != nil {
					t.Fatal(err)
				}
				if format == "json" {
					var back Report
					if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Verdict != r.Verdict {
						t.Fatalf("JSON does not round-trip: %v (verdict %q)", err, back.Verdict)
					}
				}
				path := filepath.Join("testdata", name+"."+format+".golden")
				if *update {
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("%s differs from the output (go test -update rewrites it):\n%s", path, buf.String())
				}
			})
		}
	}
}
