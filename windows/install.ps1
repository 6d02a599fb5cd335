<#
.SYNOPSIS
  Installs tokenplace-gpuhost as a Windows service that runs token.place's
  server.py from its venv (Windows PowerShell 5.1, elevated prompt).

.DESCRIPTION
  1. checks elevation and Python 3.11 (py launcher)
  2. creates <Checkout>\.venv with `py -3.11 -m venv` and pip-installs
     config\requirements_server.txt (skip with -SkipPip)
  3. confirms .venv\pyvenv.cfg points at a python311.dll
  4. copies tokenplace-gpuhost.exe to -InstallDir and writes gpuhost.ini
     next to it (kept if present, unless -Force), with the relay server.py
     polls (-RelayUrl; asked for when missing) and its registration token
     (-RelayToken or -RelayTokenFile)
  5. tokenplace-gpuhost.exe install  (service, recovery, Event Log source),
     then an ACL on gpuhost.ini: only Administrators, SYSTEM and the
     service account can read it (it may hold the token)
  6. tokenplace-gpuhost.exe firewall add  (unless -NoFirewall)
  7. tokenplace-gpuhost.exe check, then starts the service

  Run:  powershell -ExecutionPolicy Bypass -File windows\install.ps1 -Checkout C:\token.place `
          -DnsName gpu-box.example.com -RelayUrl https://relay.mycluster.dev -RelayTokenFile C:\secrets\relay-token.txt

  server.py gets --server_host/--server_port (from [network]) and
  --relay_url/--relay_port (from -RelayUrl); `check` verifies that the
  script accepts them (its --help) and that the relay answers /livez.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Checkout,
    [string]$DnsName = "",
    [int]$Port = 8000,
    [string]$ServiceName = "tokenplace-gpuhost",
    [ValidateSet("LocalSystem", "LocalService", "Virtual", "User")]
    [string]$Account = "LocalSystem",
    [string]$UserName = "",
    [string]$InstallDir = "$env:ProgramFiles\tokenplace-gpuhost",
    [string]$Exe = (Join-Path $PSScriptRoot "tokenplace-gpuhost.exe"),
    [string]$Profiles = "domain,private",
    [string]$PythonVersion = "3.11",
    # The relay server.py polls: https://relay.example.org or http://10.0.0.5:5010 (no path).
    [string]$RelayUrl = "",
    # The relay's registration token (TOKEN_PLACE_RELAY_SERVER_TOKEN there); prefer -RelayTokenFile:
    # a command-line argument can end up in the PowerShell history.
    [string]$RelayToken = "",
    [string]$RelayTokenFile = "",
    # Never ask (automation): without -RelayUrl only warn.
    [switch]$NoPrompt,
    [switch]$NoFirewall,
    [switch]$SkipPip,
    [switch]$NoStart,
    [switch]$Force
)
$ErrorActionPreference = "Stop"

function Fail([string]$msg) { Write-Host "error: $msg" -ForegroundColor Red; exit 1 }
function Step([string]$msg) { Write-Host "==> $msg" -ForegroundColor Cyan }

# 1. Elevation and Python
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail "run this from an elevated PowerShell (Run as administrator)"
}
if (-not (Test-Path $Exe)) { Fail "tokenplace-gpuhost.exe not found at $Exe (use -Exe)" }
if (-not (Test-Path $Checkout)) { Fail "checkout $Checkout does not exist" }
$Checkout = (Resolve-Path $Checkout).Path
if (-not (Test-Path (Join-Path $Checkout "server.py"))) { Fail "$Checkout has no server.py" }

$venv = Join-Path $Checkout ".venv"
$venvPython = Join-Path $venv "Scripts\python.exe"
if (-not (Test-Path $venvPython)) {
    Step "creating $venv with py -$PythonVersion"
    & py "-$PythonVersion" --version
    if ($LASTEXITCODE -ne 0) { Fail "Python $PythonVersion not found by the py launcher; install it from python.org (for all users)" }
    & py "-$PythonVersion" -m venv $venv
    if ($LASTEXITCODE -ne 0) { Fail "venv creation failed" }
}
$req = Join-Path $Checkout "config\requirements_server.txt"
if (-not $SkipPip -and (Test-Path $req)) {
    Step "pip install -r $req"
    & $venvPython -m pip install -r $req
    if ($LASTEXITCODE -ne 0) { Fail "pip install failed" }
}

# 3. pyvenv.cfg -> python3XY.dll
$cfgLines = Get-Content (Join-Path $venv "pyvenv.cfg")
$home_ = (($cfgLines | Where-Object { $_ -match '^\s*home\s*=' }) -replace '^\s*home\s*=\s*', '').Trim()
$ver = (($cfgLines | Where-Object { $_ -match '^\s*version(_info)?\s*=' }) -replace '^\s*version(_info)?\s*=\s*', '') | Select-Object -First 1
$parts = $ver.Trim().Split(".")
$dll = Join-Path $home_ ("python{0}{1}.dll" -f $parts[0], $parts[1])
if (-not (Test-Path $dll)) { Fail "pyvenv.cfg says home=$home_ but $dll does not exist" }
Write-Host "Python DLL: $dll"
if ($home_ -like "C:\Users\*" -and $Account -ne "User") {
    Write-Warning "the base Python lives under $home_ (a per-user install); the $Account account may not be able to read it. Install Python for all users or use -Account User."
}

# 4. Program files and config
New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
$target = Join-Path $InstallDir "tokenplace-gpuhost.exe"
if ((Resolve-Path $Exe).Path -ne $target) { Copy-Item -Force $Exe $target }
$ini = Join-Path $InstallDir "gpuhost.ini"

# The relay and its token. server.py wants scheme://host and the port apart;
# gpuhost splits the URL, so only its shape is checked here.
if ($RelayTokenFile) {
    if ($RelayToken) { Fail "give -RelayToken or -RelayTokenFile, not both" }
    if (-not (Test-Path $RelayTokenFile)) { Fail "token file $RelayTokenFile does not exist" }
    $RelayToken = (Get-Content -Raw $RelayTokenFile).Trim()
    if (-not $RelayToken) { Fail "token file $RelayTokenFile is empty" }
}
if ($RelayToken -match '[\x00-\x1f\x7f]') { Fail "the relay token contains a control character" }
$writeIni = -not (Test-Path $ini) -or $Force
if ($writeIni -and -not $RelayUrl -and -not $NoPrompt -and [Environment]::UserInteractive) {
    $RelayUrl = (Read-Host "Relay URL server.py should poll (e.g. https://relay.mycluster.dev; empty: server.py's own default, token.place's public relay)").Trim()
}
if ($RelayUrl -and $RelayUrl -notmatch '^https?://[^/?#@\s]+/?$') {
    Fail "-RelayUrl must be http(s)://host[:port] without a path (server.py adds /sink itself), not $RelayUrl"
}
if ($writeIni -and -not $RelayUrl) {
    Write-Warning "no -RelayUrl: server.py will poll its own default relay (token.place's public one), not yours"
}
if (-not $writeIni -and ($RelayUrl -or $RelayToken)) {
    Write-Warning "keeping existing $ini: -RelayUrl/-RelayToken not written (edit [relay] in it, or use -Force)"
}
switch ($Account) {
    "LocalSystem" { $acct = "LocalSystem" }
    "LocalService" { $acct = "NT AUTHORITY\LocalService" }
    "Virtual" { $acct = "NT SERVICE\$ServiceName" }
    "User" { if (-not $UserName) { Fail "-Account User needs -UserName DOMAIN\name" }; $acct = $UserName }
}
if (-not $writeIni) {
    Write-Host "keeping existing $ini (use -Force to rewrite it)"
} else {
    Step "writing $ini"
    $dnsMode = if ($DnsName) { "warn" } else { "off" }
    # Quoted: the INI strips one pair of surrounding quotes, nothing else.
    $tokenLine = if ($RelayToken) { "token = `"$RelayToken`"" } else { "; token =" }
    @"
; Written by windows\install.ps1. See docs\gpuhost.md for every setting.
[python]
checkout = $Checkout
venv = .venv
script = server.py
; args unset: token.place's server.py options,
;   --server_host {host} --server_port {port} --relay_url {relay_url} --relay_port {relay_port}

[network]
host = 0.0.0.0
port = $Port
dns_name = $DnsName

[relay]
url = $RelayUrl
$tokenLine

[checks]
dns = $dnsMode
firewall = warn
dns_wait = 60

[service]
name = $ServiceName
account = $acct

[log]
dir = $(Join-Path $InstallDir "logs")

[firewall]
profiles = $Profiles
"@ | Set-Content -Encoding UTF8 -Path $ini
}

# Virtual and LocalService accounts need read access to the checkout and Python, write to logs.
if ($Account -in @("Virtual", "LocalService")) {
    Step "granting $acct access"
    New-Item -ItemType Directory -Force -Path (Join-Path $InstallDir "logs") | Out-Null
    & icacls $Checkout /grant "${acct}:(OI)(CI)RX" /T /Q | Out-Null
    & icacls $home_ /grant "${acct}:(OI)(CI)RX" /T /Q | Out-Null
    & icacls (Join-Path $InstallDir "logs") /grant "${acct}:(OI)(CI)M" /Q | Out-Null
}

# 5. Service
Step "registering the service"
$installArgs = @("--config", $ini, "install")
if ($Account -eq "User") {
    $cred = Get-Credential -UserName $UserName -Message "Password for the service account"
    $installArgs += @("--account", $UserName, "--password", $cred.GetNetworkCredential().Password)
}
& $target @installArgs
if ($LASTEXITCODE -ne 0) { Fail "service registration failed (already installed? run uninstall.ps1 first)" }

# gpuhost.ini may hold the relay token: Administrators and SYSTEM full
# control, the service account read, nobody else (inheritance cut). After
# the service exists, so that NT SERVICE\<name> resolves.
Step "restricting $ini to Administrators, SYSTEM and $acct"
$acl = New-Object System.Security.AccessControl.FileSecurity
$acl.SetAccessRuleProtection($true, $false)
$admins = New-Object System.Security.Principal.SecurityIdentifier("S-1-5-32-544")
$system = New-Object System.Security.Principal.SecurityIdentifier("S-1-5-18")
foreach ($sid in @($admins, $system)) {
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($sid, "FullControl", "Allow")))
}
if ($Account -ne "LocalSystem") {
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($acct, "Read", "Allow")))
}
Set-Acl -Path $ini -AclObject $acl

# 6. Firewall
if (-not $NoFirewall) {
    Step "adding the inbound firewall rule (profiles $Profiles)"
    & $target --config $ini firewall add
    if ($LASTEXITCODE -ne 0) { Write-Warning "firewall rule not added; see the output above" }
}

# 7. Check and start
Step "pre-flight check"
& $target --config $ini check
$checkRc = $LASTEXITCODE
if ($checkRc -eq 2 -and -not $Force) { Fail "a check failed (see above); fix it and run: Start-Service $ServiceName" }
if ($NoStart) { Write-Host "installed; start it with: Start-Service $ServiceName"; exit 0 }
Step "starting $ServiceName"
& $target --config $ini start
if ($LASTEXITCODE -ne 0) { Fail "the service did not start; see $(Join-Path $InstallDir 'logs\gpuhost.log') and the Application event log" }
Get-Service $ServiceName | Format-Table -AutoSize Status, Name, DisplayName
& $target --config $ini status
Write-Host "logs: $(Join-Path $InstallDir 'logs')"
