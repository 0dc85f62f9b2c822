module github.com/streamrt/streamrt/sdk/go

go 1.26.0

require github.com/streamrt/streamrt/abi v0.0.0

replace github.com/streamrt/streamrt/abi => ../../abi
