//! rtm SDK (placeholder)
