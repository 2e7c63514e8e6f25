# goheads: the Heads firmware userland in Go.
#   make run            boot BOARD (default qemu-tpm2) in QEMU with swtpm
#   make test           every test: unit, swtpm, GnuPG/cryptsetup cross-checks, fuzz, VM, reproducibility
#   make bench          size and speed table
#   make BOARD=<b> all  build out/<b>/{bzImage,initrd.cpio.zst,hashes.txt,sizes.txt}
#   make BOARD=<b> rom  coreboot boards: out/<b>/<b>.rom + expected-pcrs.json (COREBOOT_SRC=<tree>, else downloads the pinned commit)
#   make deps           install the Debian packages the build and tests need (root)
# The Makefile only fronts the Go builder in build/ (go run ./build <verb>).

BOARD ?= qemu-tpm2
GO ?= go
BUILD = $(GO) run ./build
# Boards every `make test` builds and boots.
TEST_BOARDS = qemu-tpm2 qemu-tpm1
FUZZTIME ?= 5s

.PHONY: all rom run test bench reproducible check deps fuzz lint unit clean inject_gpg

all:
	$(BUILD) all -board $(BOARD)

rom: gocheck
	$(BUILD) rom -board $(BOARD)

run: gocheck
	$(BUILD) run -board $(BOARD)

# check first: a missing tool fails in one line with the apt-get command.
test: gocheck check lint
	@for b in $(TEST_BOARDS); do $(BUILD) all -board $$b || exit 1; done
	GOHEADS_REQUIRE_ALL=1 $(GO) test -p 1 -count=1 -timeout 60m ./...
	$(BUILD) fuzz -fuzztime $(FUZZTIME)
	$(BUILD) reproducible -board $(BOARD)
	@[ -n "$$COREBOOT_SRC" ] || echo "make test: the coreboot ROM tests (build/TestROM) were skipped: COREBOOT_SRC is not set; fix: see README, 'coreboot ROMs'"

unit:
	$(GO) test -short ./...

bench: gocheck
	$(BUILD) bench -board $(BOARD)

reproducible:
	$(BUILD) reproducible -board $(BOARD)

check:
	$(BUILD) check

# make inject_gpg PUBKEY_ASC=key.asc [CONFIG_USER=config.user]
inject_gpg:
	$(BUILD) inject_gpg -board $(BOARD)

fuzz:
	$(BUILD) fuzz -fuzztime $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

gocheck:
	@command -v $(GO) >/dev/null 2>&1 || { echo "go not found; fix: install Go 1.26 (https://go.dev/dl) and put it on PATH"; exit 1; }

deps:
	apt-get update
	apt-get install -y $$(sed -n 's/^PACKAGES="\(.*\)"$$/\1/p' .ci/run)

clean:
	rm -rf out
