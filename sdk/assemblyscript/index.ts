// The package's entry for the AssemblyScript compiler, which resolves
// `import ... from "streamrt"` to node_modules/streamrt/index.ts.
export * from "./assembly/index";
