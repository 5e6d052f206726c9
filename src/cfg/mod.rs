//! SER's routing language (`ser.cfg`): lexer now; the parser, checker,
//! bytecode compiler and VM follow (issue 3).

pub mod lexer;
