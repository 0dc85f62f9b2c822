module github.com/streamrt/streamrt/abi

go 1.26.0
