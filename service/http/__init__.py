"""HTTP plumbing: keys and roles, request guards, problem responses, the h11 protocol."""
