// Command genschema writes the JSON Schema of the busbar config file. It
// runs from "go generate ./config"; config's tests fail when the committed
// schema differs from what it writes.
package main

import (
	"flag"
	"log"
	"os"

	"github.com/busbar/busbar/config"
)

func main() {
	out := flag.String("o", "busbar.schema.json", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, config.Schema(), 0o644); err != nil {
		log.Fatal(err)
	}
}
