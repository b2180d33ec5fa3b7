//! Server selection (`balance`): pure functions of server state, no sockets.
