//! Tokens to the [`Script`] tree. On an error the parser records it and
//! skips to the next statement boundary, so one mistake does not hide the
//! next one.

use super::ast::{
    Arg, BinOp, Call, Case, CmpOp, Expr, Global, LoadModule, ModParam, Rhs, RouteBlock, RouteKind,
    Script, Stmt, UnOp, Value, ValueExpr,
};
use super::lexer::{Pos, Tok, Token, lex};

/// A syntax error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub msg: String,
}

/// Parses a whole script; returns the tree built from what parsed and every
/// error found (lexical errors included), in source order.
pub fn parse(src: &str) -> (Script, Vec<SyntaxError>) {
    let (tokens, lex_errors) = lex(src);
    let mut p = Parser {
        tokens,
        i: 0,
        errors: lex_errors
            .into_iter()
            .map(|e| SyntaxError {
                pos: e.pos,
                msg: e.msg,
            })
            .collect(),
        end: end_pos(src),
    };
    let script = p.script();
    p.errors.sort_by_key(|e| e.pos);
    // Unclosed nested blocks all report the same end of file once.
    p.errors.dedup();
    (script, p.errors)
}

/// Position just past the end of the source, for "unexpected end" errors.
fn end_pos(src: &str) -> Pos {
    let line = src.lines().count().max(1) as u32;
    let col = src.lines().last().map_or(0, |l| l.chars().count()) as u32 + 1;
    Pos { line, col }
}

/// Names of the route sections and which kind each opens.
fn route_kind(word: &str) -> Option<RouteKind> {
    Some(match word {
        "route" | "request_route" => RouteKind::Request,
        "failure_route" => RouteKind::Failure,
        "onreply_route" | "reply_route" => RouteKind::Reply,
        "branch_route" => RouteKind::Branch,
        "event_route" => RouteKind::Event,
        "onsend_route" => RouteKind::OnSend,
        _ => return None,
    })
}

/// Left-hand operands of comparisons (SER's core operands).
const OPERANDS: [&str; 12] = [
    "method", "uri", "from_uri", "to_uri", "src_ip", "dst_ip", "src_port", "dst_port", "proto",
    "af", "msg:len", "status",
];

type Result<T> = std::result::Result<T, ()>;

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    errors: Vec<SyntaxError>,
    end: Pos,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.i).map(|t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.i + ahead).map(|t| &t.tok)
    }

    fn pos(&self) -> Pos {
        self.tokens.get(self.i).map_or(self.end, |t| t.pos)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn fail<T>(&mut self, what: &str) -> Result<T> {
        let pos = self.pos();
        let msg = match self.peek() {
            Some(t) => format!("expected {what}, found {t}"),
            None => format!("expected {what}, found end of file"),
        };
        self.errors.push(SyntaxError { pos, msg });
        Err(())
    }

    fn expect(&mut self, tok: &Tok) -> Result<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            self.fail(&tok.to_string())
        }
    }

    fn word(&mut self, what: &str) -> Result<(String, Pos)> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                let pos = self.pos();
                self.i += 1;
                Ok((w, pos))
            }
            _ => self.fail(what),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.i += 1;
                Ok(s)
            }
            _ => self.fail(what),
        }
    }

    /// Skips to just past the next `;` or to a `}` / end (not consumed),
    /// keeping brace depth, after an error inside a statement.
    fn recover_statement(&mut self) {
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::Semi if depth == 0 => {
                    self.i += 1;
                    return;
                }
                Tok::LBrace => depth += 1,
                Tok::RBrace if depth == 0 => return,
                Tok::RBrace => depth -= 1,
                _ => {}
            }
            self.i += 1;
        }
    }

    // ---- top level ----

    fn script(&mut self) -> Script {
        let mut s = Script::default();
        while let Some(tok) = self.peek() {
            let start = self.i;
            let ok = match tok.clone() {
                Tok::Semi => {
                    self.i += 1;
                    Ok(())
                }
                Tok::Word(w) if w == "loadmodule" => self.loadmodule(&mut s),
                Tok::Word(w) if w == "modparam" => self.modparam(&mut s),
                Tok::Word(w)
                    if route_kind(&w).is_some() && self.peek_at(1) != Some(&Tok::Assign) =>
                {
                    self.route_block(&mut s)
                }
                Tok::Word(_) if self.peek_at(1) == Some(&Tok::Assign) => self.global(&mut s),
                _ => self.fail("a global parameter, loadmodule, modparam or a route block"),
            };
            if ok.is_err() {
                self.recover_top_level(start);
            }
        }
        s
    }

    /// After a top-level error, skips to the start of the next top-level item.
    fn recover_top_level(&mut self, start: usize) {
        if self.i == start {
            self.i += 1;
        }
        let mut depth = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Tok::LBrace => depth += 1,
                Tok::RBrace => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.i += 1;
                        return;
                    }
                }
                Tok::Word(w)
                    if depth == 0
                        && (w == "loadmodule" || w == "modparam" || route_kind(w).is_some()) =>
                {
                    return;
                }
                _ => {}
            }
            self.i += 1;
        }
    }

    fn global(&mut self, s: &mut Script) -> Result<()> {
        let (name, pos) = self.word("a parameter name")?;
        self.expect(&Tok::Assign)?;
        let value = self.global_value()?;
        s.globals.push(Global { name, value, pos });
        Ok(())
    }

    /// A global's value: a string, a number, or unquoted tokens on the same
    /// line joined as written (`udp:127.0.0.1:5060`, `yes`, `10.0.0.1`).
    fn global_value(&mut self) -> Result<Value> {
        let line = self.pos().line;
        match self.peek() {
            Some(Tok::Str(_)) => return self.string("a value").map(Value::Str),
            Some(Tok::Int(n)) if !self.continues_value(1, line) => {
                let n = *n;
                self.i += 1;
                return Ok(Value::Int(n));
            }
            Some(Tok::Word(_) | Tok::Int(_) | Tok::LBracket) => {}
            _ => return self.fail("a value"),
        }
        let mut text = String::new();
        while let Some(t) = self.tokens.get(self.i) {
            if t.pos.line != line {
                break;
            }
            match &t.tok {
                Tok::Word(w) => text.push_str(w),
                Tok::Int(n) => text.push_str(&n.to_string()),
                Tok::Colon => text.push(':'),
                Tok::Slash => text.push('/'),
                // `udp:[::1]:5060`: an IPv6 address in brackets.
                Tok::LBracket => text.push('['),
                Tok::RBracket => text.push(']'),
                _ => break,
            }
            self.i += 1;
        }
        Ok(Value::Word(text))
    }

    fn continues_value(&self, ahead: usize, line: u32) -> bool {
        self.tokens.get(self.i + ahead).is_some_and(|t| {
            t.pos.line == line
                && matches!(
                    t.tok,
                    Tok::Colon | Tok::Slash | Tok::Word(_) | Tok::LBracket | Tok::RBracket
                )
        })
    }

    fn loadmodule(&mut self, s: &mut Script) -> Result<()> {
        let pos = self.pos();
        self.i += 1;
        let path = self.string("a quoted module path")?;
        s.modules.push(LoadModule { path, pos });
        self.eat(&Tok::Semi);
        Ok(())
    }

    fn modparam(&mut self, s: &mut Script) -> Result<()> {
        let pos = self.pos();
        self.i += 1;
        self.expect(&Tok::LParen)?;
        let module = self.string("a quoted module name")?;
        self.expect(&Tok::Comma)?;
        let param = self.string("a quoted parameter name")?;
        self.expect(&Tok::Comma)?;
        let value = match self.peek().cloned() {
            Some(Tok::Str(v)) => Value::Str(v),
            Some(Tok::Int(n)) => Value::Int(n),
            // SER's `modparam("auth", "calculate_ha1", yes)`.
            Some(Tok::Word(w))
                if matches!(w.to_ascii_lowercase().as_str(), "yes" | "on" | "true") =>
            {
                Value::Int(1)
            }
            Some(Tok::Word(w))
                if matches!(w.to_ascii_lowercase().as_str(), "no" | "off" | "false") =>
            {
                Value::Int(0)
            }
            _ => return self.fail("a string, a number, yes or no"),
        };
        self.i += 1;
        self.expect(&Tok::RParen)?;
        self.eat(&Tok::Semi);
        s.modparams.push(ModParam {
            module,
            param,
            value,
            pos,
        });
        Ok(())
    }

    fn route_block(&mut self, s: &mut Script) -> Result<()> {
        let (word, pos) = self.word("a route keyword")?;
        let kind = route_kind(&word).unwrap_or(RouteKind::Request);
        let mut name = None;
        if self.eat(&Tok::LBracket) {
            name = Some(match self.peek().cloned() {
                Some(Tok::Int(n)) => n.to_string(),
                Some(Tok::Word(w) | Tok::Str(w)) => w,
                _ => return self.fail("a route number or name"),
            });
            self.i += 1;
            // An event's name: `core:worker-one-init`.
            while kind == RouteKind::Event && self.eat(&Tok::Colon) {
                let Some(Tok::Word(w)) = self.peek().cloned() else {
                    return self.fail("an event name after ':'");
                };
                self.i += 1;
                if let Some(n) = &mut name {
                    n.push(':');
                    n.push_str(&w);
                }
            }
            self.expect(&Tok::RBracket)?;
        }
        // route, route[0] and request_route are all the main route.
        if kind == RouteKind::Request && name.as_deref() == Some("0") {
            name = None;
        }
        // `reply_route` / `onreply_route` alone: the core's reply route,
        // run for every reply (Kamailio's).
        if !matches!(
            kind,
            RouteKind::Request | RouteKind::Reply | RouteKind::OnSend
        ) && name.is_none()
        {
            let msg = format!("{word} needs a number or name in [ ]");
            self.errors.push(SyntaxError { pos, msg });
        }
        self.expect(&Tok::LBrace)?;
        let body = self.stmts_until_brace();
        s.routes.push(RouteBlock {
            kind,
            name,
            body,
            pos,
        });
        Ok(())
    }

    // ---- statements ----

    /// Statements up to and including the closing `}`.
    fn stmts_until_brace(&mut self) -> Vec<Stmt> {
        let mut body = Vec::new();
        loop {
            match self.peek() {
                None => {
                    let _ = self.fail::<()>("'}'");
                    return body;
                }
                Some(Tok::RBrace) => {
                    self.i += 1;
                    return body;
                }
                Some(Tok::Semi) => self.i += 1,
                Some(_) => match self.stmt() {
                    Ok(st) => body.push(st),
                    Err(()) => self.recover_statement(),
                },
            }
        }
    }

    fn stmt(&mut self) -> Result<Stmt> {
        let pos = self.pos();
        match self.peek().cloned() {
            Some(Tok::LBrace) => {
                self.i += 1;
                Ok(Stmt::Block(self.stmts_until_brace()))
            }
            Some(Tok::Word(w)) => match w.as_str() {
                "if" => self.if_stmt(),
                "switch" => self.switch_stmt(pos),
                "while" => {
                    self.i += 1;
                    self.expect(&Tok::LParen)?;
                    let cond = self.expr()?;
                    self.expect(&Tok::RParen)?;
                    let body = self.branch()?;
                    Ok(Stmt::While { cond, body, pos })
                }
                "break" => self.keyword(Stmt::Break(pos)),
                "exit" => self.keyword(Stmt::Exit(pos)),
                "drop" if self.peek_at(1) != Some(&Tok::LParen) => self.keyword(Stmt::Drop(pos)),
                "drop" => {
                    self.call()?;
                    self.eat(&Tok::Semi);
                    Ok(Stmt::Drop(pos))
                }
                "return" => self.return_stmt(pos),
                _ if w.starts_with('$') => {
                    let target = self.pv_text()?;
                    self.expect(&Tok::Assign)?;
                    let value = self.value_expr()?;
                    self.eat(&Tok::Semi);
                    Ok(Stmt::Assign { target, value, pos })
                }
                _ => {
                    let call = self.call()?;
                    // SER scripts often omit ';' after a call (see the seeds).
                    self.eat(&Tok::Semi);
                    Ok(Stmt::Call(call))
                }
            },
            _ => self.fail("a statement"),
        }
    }

    fn keyword(&mut self, stmt: Stmt) -> Result<Stmt> {
        self.i += 1;
        self.eat(&Tok::Semi);
        Ok(stmt)
    }

    fn return_stmt(&mut self, pos: Pos) -> Result<Stmt> {
        self.i += 1;
        let mut value = None;
        if self.eat(&Tok::LParen) {
            if let Some(Tok::Int(n)) = self.peek() {
                value = Some(*n);
                self.i += 1;
            }
            self.expect(&Tok::RParen)?;
        }
        self.eat(&Tok::Semi);
        Ok(Stmt::Return(value, pos))
    }

    fn if_stmt(&mut self) -> Result<Stmt> {
        let pos = self.pos();
        self.i += 1;
        self.expect(&Tok::LParen)?;
        let cond = self.expr()?;
        self.expect(&Tok::RParen)?;
        let then = self.branch()?;
        let otherwise = if self.peek() == Some(&Tok::Word("else".into())) {
            self.i += 1;
            self.branch()?
        } else {
            Vec::new()
        };
        Ok(Stmt::If {
            cond,
            then,
            otherwise,
            pos,
        })
    }

    fn switch_stmt(&mut self, pos: Pos) -> Result<Stmt> {
        self.i += 1;
        self.expect(&Tok::LParen)?;
        let pv = match self.peek() {
            Some(Tok::Word(w)) if w.starts_with('$') => self.pv_text()?,
            _ => return self.fail("a pseudo-variable to switch on"),
        };
        self.expect(&Tok::RParen)?;
        self.expect(&Tok::LBrace)?;
        let mut cases = Vec::new();
        loop {
            let at = self.pos();
            match self.peek().cloned() {
                Some(Tok::RBrace) => {
                    self.i += 1;
                    break;
                }
                Some(Tok::Word(w)) if w == "case" => {
                    self.i += 1;
                    let value = match self.peek().cloned() {
                        Some(Tok::Int(n)) => Rhs::Int(n),
                        Some(Tok::Str(s)) => Rhs::Str(s),
                        _ => return self.fail("a number or a quoted string after 'case'"),
                    };
                    self.i += 1;
                    self.expect(&Tok::Colon)?;
                    let body = self.case_body();
                    cases.push(Case {
                        value: Some(value),
                        body,
                        pos: at,
                    });
                }
                Some(Tok::Word(w)) if w == "default" => {
                    self.i += 1;
                    self.expect(&Tok::Colon)?;
                    let body = self.case_body();
                    cases.push(Case {
                        value: None,
                        body,
                        pos: at,
                    });
                }
                _ => return self.fail("'case', 'default' or '}'"),
            }
        }
        Ok(Stmt::Switch { pv, cases, pos })
    }

    /// A case's statements: up to the next `case`, `default` or `}`.
    fn case_body(&mut self) -> Vec<Stmt> {
        let mut body = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::RBrace) => return body,
                Some(Tok::Word(w)) if w == "case" || w == "default" => return body,
                Some(Tok::Semi) => self.i += 1,
                Some(_) => match self.stmt() {
                    Ok(st) => body.push(st),
                    Err(()) => self.recover_statement(),
                },
            }
        }
    }

    /// The body of `if`/`else`: a block or one statement.
    fn branch(&mut self) -> Result<Vec<Stmt>> {
        if self.eat(&Tok::LBrace) {
            Ok(self.stmts_until_brace())
        } else {
            Ok(vec![self.stmt()?])
        }
    }

    fn call(&mut self) -> Result<Call> {
        let (name, pos) = self.word("an action")?;
        let mut args = Vec::new();
        if !self.eat(&Tok::LParen) {
            return self.fail("'(' after an action name");
        }
        if !self.eat(&Tok::RParen) {
            loop {
                args.push(self.arg()?);
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(&Tok::Comma)?;
            }
        }
        Ok(Call { name, args, pos })
    }

    fn arg(&mut self) -> Result<Arg> {
        let pos = self.pos();
        let arg = match self.peek().cloned() {
            Some(Tok::Str(s)) => Arg::Str(s, pos),
            Some(Tok::Int(n)) => Arg::Int(n, pos),
            Some(Tok::Word(w)) => Arg::Word(w, pos),
            _ => return self.fail("an argument"),
        };
        self.i += 1;
        // uri:host, uri:port
        if let Arg::Word(w, _) = &arg {
            if self.eat(&Tok::Colon) {
                let (rest, _) = self.word("a name after ':'")?;
                return Ok(Arg::Word(format!("{w}:{rest}"), pos));
            }
        }
        Ok(arg)
    }

    // ---- expressions: or < and < not < primary ----

    /// Consumes a logical operator written as a symbol (`&&`) or a word (`and`).
    fn eat_logical(&mut self, symbol: &Tok, word: &str) -> bool {
        if self.eat(symbol) {
            return true;
        }
        let is_word = matches!(self.peek(), Some(Tok::Word(x)) if x == word);
        self.i += usize::from(is_word);
        is_word
    }

    fn expr(&mut self) -> Result<Expr> {
        let mut lhs = self.and_expr()?;
        while self.eat_logical(&Tok::Or, "or") {
            let rhs = self.and_expr()?;
            lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> Result<Expr> {
        let mut lhs = self.not_expr()?;
        while self.eat_logical(&Tok::And, "and") {
            let rhs = self.not_expr()?;
            lhs = Expr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn not_expr(&mut self) -> Result<Expr> {
        if self.eat(&Tok::Not) {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        if self.eat(&Tok::LParen) {
            let e = self.expr()?;
            self.expect(&Tok::RParen)?;
            return Ok(e);
        }
        let pos = self.pos();
        let Some(Tok::Word(w)) = self.peek().cloned() else {
            return self.fail("a condition");
        };
        // Kamailio: values as operands (`$fU`, `strlen($rU)`, `$var(a) + 1`).
        if w.starts_with('$') || UNARY.contains(&w.as_str()) {
            return self.value_condition(pos);
        }
        // msg:len is written with a colon.
        let (operand, len) = match (self.peek_at(1), self.peek_at(2)) {
            (Some(Tok::Colon), Some(Tok::Word(x))) => (format!("{w}:{x}"), 3),
            _ => (w.clone(), 1),
        };
        if OPERANDS.contains(&operand.as_str()) && self.peek_at(len).and_then(cmp_op).is_some() {
            self.i += len;
            let op = self.peek().and_then(cmp_op).ok_or(())?;
            self.i += 1;
            let rhs = self.rhs()?;
            return Ok(Expr::Cmp {
                operand,
                op,
                rhs,
                pos,
            });
        }
        Ok(Expr::Call(self.call()?))
    }

    /// A condition on values; a pseudo-variable compared with a plain
    /// right side stays [`Expr::Cmp`] (compiled to a direct test).
    fn value_condition(&mut self, pos: Pos) -> Result<Expr> {
        let a = self.value_expr()?;
        let Some(op) = self.peek().and_then(cmp_op) else {
            return Ok(match a {
                ValueExpr::Pv(pv) => Expr::Pv { pv, pos },
                v => Expr::Value { v, pos },
            });
        };
        self.i += 1;
        let value_next = match self.peek() {
            Some(Tok::Str(_) | Tok::Int(_) | Tok::LParen) => true,
            Some(Tok::Word(w)) => w.starts_with('$') || UNARY.contains(&w.as_str()),
            _ => false,
        };
        let b = if value_next {
            self.value_expr()?
        } else if let ValueExpr::Pv(pv) = a {
            // `$rd == myself`, `$si == 10.0.0.0/8`.
            let rhs = self.rhs()?;
            return Ok(Expr::Cmp {
                operand: pv,
                op,
                rhs,
                pos,
            });
        } else {
            return self.fail("a value to compare with");
        };
        Ok(match (a, b) {
            (ValueExpr::Pv(operand), ValueExpr::Str(s)) => Expr::Cmp {
                operand,
                op,
                rhs: Rhs::Str(s),
                pos,
            },
            (ValueExpr::Pv(operand), ValueExpr::Int(n)) => Expr::Cmp {
                operand,
                op,
                rhs: Rhs::Int(n),
                pos,
            },
            (ValueExpr::Pv(operand), ValueExpr::Pv(other)) => Expr::Cmp {
                operand,
                op,
                rhs: Rhs::Pv(other),
                pos,
            },
            (a, b) => Expr::Values { a, op, b, pos },
        })
    }

    /// An assignment's value: `+ - | &` over `* / %` over strings,
    /// numbers, pseudo-variables and parentheses.
    fn value_expr(&mut self) -> Result<ValueExpr> {
        let mut left = self.value_term()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => BinOp::Add,
                Some(Tok::Word(w)) if w == "-" => BinOp::Sub,
                Some(Tok::Pipe) => BinOp::BitOr,
                Some(Tok::Amp) => BinOp::BitAnd,
                _ => return Ok(left),
            };
            self.i += 1;
            let right = self.value_term()?;
            left = ValueExpr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn value_term(&mut self) -> Result<ValueExpr> {
        let mut left = self.value_factor()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Star) => BinOp::Mul,
                Some(Tok::Slash) => BinOp::Div,
                Some(Tok::Percent) => BinOp::Mod,
                _ => return Ok(left),
            };
            self.i += 1;
            let right = self.value_factor()?;
            left = ValueExpr::Bin(op, Box::new(left), Box::new(right));
        }
    }

    fn value_factor(&mut self) -> Result<ValueExpr> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.i += 1;
                Ok(ValueExpr::Str(s))
            }
            Some(Tok::Int(n)) => {
                self.i += 1;
                Ok(ValueExpr::Int(n))
            }
            Some(Tok::Word(w)) if w.starts_with('$') => Ok(ValueExpr::Pv(self.pv_text()?)),
            Some(Tok::Word(w)) if UNARY.contains(&w.as_str()) => {
                self.i += 1;
                let op = match w.as_str() {
                    "strlen" => UnOp::Strlen,
                    "strempty" => UnOp::Strempty,
                    _ => UnOp::Defined,
                };
                // `defined $x` needs no parentheses; the others take them.
                let v = if op == UnOp::Defined {
                    self.value_factor()?
                } else {
                    self.expect(&Tok::LParen)?;
                    let v = self.value_expr()?;
                    self.expect(&Tok::RParen)?;
                    v
                };
                Ok(ValueExpr::Unary(op, Box::new(v)))
            }
            Some(Tok::LParen) => {
                self.i += 1;
                let e = self.value_expr()?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            _ => self.fail("a string, a number or a pseudo-variable"),
        }
    }

    /// A pseudo-variable's text: the lexer keeps `$name(...)` and
    /// `$(pv{tr})` in one word.
    fn pv_text(&mut self) -> Result<String> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) if w.starts_with('$') => {
                self.i += 1;
                Ok(w)
            }
            _ => self.fail("a pseudo-variable"),
        }
    }

    fn rhs(&mut self) -> Result<Rhs> {
        let rhs = match self.peek().cloned() {
            Some(Tok::Str(s)) => Rhs::Str(s),
            Some(Tok::Int(n)) => Rhs::Int(n),
            Some(Tok::Word(w)) => Rhs::Word(w),
            _ => return self.fail("a string, number, address or 'myself'"),
        };
        self.i += 1;
        let Rhs::Word(w) = rhs else { return Ok(rhs) };
        if !self.eat(&Tok::Slash) {
            return Ok(Rhs::Word(w));
        }
        let mask = match self.peek().cloned() {
            Some(Tok::Int(n)) => n.to_string(),
            Some(Tok::Word(m)) => m,
            _ => return self.fail("a prefix length or mask after '/'"),
        };
        self.i += 1;
        Ok(Rhs::Net(w, mask))
    }
}

/// Kamailio's unary operators, written as words.
const UNARY: &[&str] = &["strlen", "strempty", "defined"];

fn cmp_op(t: &Tok) -> Option<CmpOp> {
    Some(match t {
        Tok::Eq => CmpOp::Eq,
        Tok::Ne => CmpOp::Ne,
        Tok::Match => CmpOp::Match,
        Tok::NotMatch => CmpOp::NotMatch,
        Tok::Lt => CmpOp::Lt,
        Tok::Gt => CmpOp::Gt,
        Tok::Le => CmpOp::Le,
        Tok::Ge => CmpOp::Ge,
        // A lone '=' is SER's equality too.
        Tok::Assign => CmpOp::Eq,
        _ => return None,
    })
}
