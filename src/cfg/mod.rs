//! SER's routing language (`ser.cfg`): lexer and parser now; the checker,
//! bytecode compiler and VM follow (issue 3).

pub mod ast;
pub mod lexer;
pub mod parser;

#[cfg(test)]
mod parser_tests;
