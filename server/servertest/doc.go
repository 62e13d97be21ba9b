// Package servertest drives the agent server the way an MCP client does,
// for tests: an initialized mcp-go client over streamable HTTP, tool calls,
// and the decoding of their results. It is imported only by tests, and
// imports mcp-go's client; never a database driver.
package servertest
