package server

import "github.com/signalsmith/agent-server/store"

// ownerlessMessage is what an agent without a human is told on every call.
// Agent members from databases older than required owners have none; they
// are denied everything (RBAC denies them too) until an admin names the
// human, which is what the message asks for.
const ownerlessMessage = "This agent key acts for no human, so it may not do anything. " +
	"Ask a workspace admin to recreate it with: signalsmith keys create --kind agent --owner NAME " +
	"(NAME is the person the agent acts for)."

// actsForNobody reports whether p is an agent with no human behind it.
func actsForNobody(p store.Principal) bool {
	return p.Kind == store.KindAgent && p.OwnerID == ""
}
