"""The milter front end: the protocol codec (`protocol`) and the asyncio server (`server`)."""
