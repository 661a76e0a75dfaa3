package gridmap_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// normalized returns the lines of s without their indentation, blank lines dropped: a snippet
// and the code it was copied from compare equal whatever their nesting.
func normalized(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func containsRun(hay, needle []string) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		match := true
		for j := range needle {
			if hay[i+j] != needle[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// TestDocSnippets: every Go snippet of README.md and docs/*.md is an excerpt of a Go file of this
// repository that the tests compile (Example functions, examples/), so no snippet shows code
// that does not build. A line "// ..." in a snippet marks an elision: each part between them must
// appear, in one piece, in one file.
func TestDocSnippets(t *testing.T) {
	var code [][]string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code = append(code, normalized(string(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob("docs/*.md")
	docs = append([]string{"README.md"}, docs...)
	block := regexp.MustCompile("(?s)```go\n(.*?)```")
	snippets := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(b), -1) {
			for _, part := range strings.Split(m[1], "// ...\n") {
				want := normalized(part)
				if len(want) == 0 {
					continue
				}
				snippets++
				found := false
				for _, c := range code {
					if containsRun(c, want) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("%s: this snippet is in no Go file of the repository (copy it from a tested one):\n%s", doc, part)
				}
			}
		}
	}
	if snippets < 10 {
		t.Fatalf("found %d snippets in %v: the README lost its tour?", snippets, docs)
	}
}

// TestReadmeTestCommand: the README's test command is the one CI runs.
func TestReadmeTestCommand(t *testing.T) {
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var cmd string
	sc := bufio.NewScanner(strings.NewReader(string(ci)))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "go test ") {
			cmd = l
		}
	}
	if cmd == "" {
		t.Fatal(".ci/run runs no go test")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "\n"+cmd+"\n") {
		t.Fatalf("README.md does not give CI's test command %q", cmd)
	}
}
