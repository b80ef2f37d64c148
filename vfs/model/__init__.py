"""What a version is made of, whatever stores it: object ids, chunking, the
canonical encoding of entries, trees and versions, reserved names, and the
message and parameters a version carries. Imports nothing else of dvfs but errors."""
