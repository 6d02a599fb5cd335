<#
.SYNOPSIS
  Installs or upgrades tokenplace-gpuhost, the Windows service that runs
  token.place's server.py from its venv (Windows PowerShell 5.1, elevated).

.DESCRIPTION
  1. checks elevation and Python 3.11 (py launcher); creates
     <Checkout>\.venv with `py -3.11 -m venv` when it is missing
  2. pip: config\requirements_server.txt, except that an installed
     llama_cpp_python which already satisfies the file's pin is never
     reinstalled (a plain pip run could replace a CUDA build with a CPU
     one); -CudaBuild builds the pinned version with CUDA when it must be
     (re)installed; prints the installed build and its GPU offload answer
     (skip the whole step with -SkipPip)
  3. confirms .venv\pyvenv.cfg points at a python3XY.dll
  4. copies tokenplace-gpuhost.exe (and uninstall.ps1) to -InstallDir and
     writes gpuhost.ini next to it (kept if present, unless -Force), with
     the relay server.py polls (-RelayUrl; asked for when missing), its
     registration token (-RelayTokenFile or -RelayToken) and the data
     directory (-DataDir)
  5. tokenplace-gpuhost.exe install (service, recovery, Event Log source);
     -Account User: grants the account "Log on as a service" first
     (LsaAddAccountRights; Windows 11 Home has no secpol.msc)
  6. access for the service account (checkout, base Python, logs\, data
     directory; gpuhost.ini readable only by Administrators, SYSTEM and it)
  7. tokenplace-gpuhost.exe firewall add (unless -NoFirewall)
  8. tokenplace-gpuhost.exe check, then starts the service

  Everything it creates or grants is recorded in <InstallDir>\install-state.json,
  which uninstall.ps1 reads to take exactly that back.

  Run again over an installed service it upgrades in place: after the
  checks (a refusal, such as a changed pin over a GPU build, leaves the
  running service alone) it stops the service, runs pip, swaps the exe
  (waiting until the old one is unlocked), keeps gpuhost.ini (unless
  -Force), re-applies the grants and the firewall rule, checks and starts.
  The service registration and its account are kept.

  Run:  powershell -ExecutionPolicy Bypass -File install.ps1 -Checkout C:\token.place `
          -DnsName gpu-box.example.com -RelayUrl https://relay.mycluster.dev -RelayTokenFile C:\secrets\relay-token.txt
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Checkout,
    [string]$DnsName = "",
    [int]$Port = 8000,
    [string]$ServiceName = "tokenplace-gpuhost",
    [ValidateSet("LocalSystem", "LocalService", "Virtual", "User")]
    [string]$Account = "LocalSystem",
    # -Account User: DOMAIN\name or .\name; or give -Credential (no prompt).
    [string]$UserName = "",
    [System.Management.Automation.PSCredential]$Credential = $null,
    [string]$InstallDir = "$env:ProgramFiles\tokenplace-gpuhost",
    [string]$Exe = (Join-Path $PSScriptRoot "tokenplace-gpuhost.exe"),
    [string]$Profiles = "domain,private",
    [string]$PythonVersion = "3.11",
    # Where token.place keeps its model (about 5 GB on first start); the
    # service account gets write access, uninstall.ps1 -Purge deletes it.
    [string]$DataDir = (Join-Path $env:ProgramData "tokenplace\data"),
    # The relay server.py polls: https://relay.example.org or http://10.0.0.5:5010 (no path).
    [string]$RelayUrl = "",
    # The relay's registration token (TOKEN_PLACE_RELAY_SERVER_TOKEN there); prefer -RelayTokenFile:
    # a command-line argument can end up in the PowerShell history.
    [string]$RelayToken = "",
    [string]$RelayTokenFile = "",
    # When llama_cpp_python must be (re)installed, build the pinned version with
    # CUDA (needs the Visual Studio Build Tools' C++ tools and the CUDA Toolkit).
    [switch]$CudaBuild,
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

# The config key gpuhost reads the data directory from. Written only when
# the exe knows it (older builds refuse unknown keys).
$DataDirSection = "data"
$DataDirKey = "dir"

# True when the INI file sets $Key inside [$Section] ("dir" alone would
# also match [log] dir).
function Test-IniKey([string]$Path, [string]$Section, [string]$Key) {
    $current = ""
    foreach ($line in Get-Content -Path $Path) {
        if ($line -match '^\s*\[([^\]]+)\]') { $current = $Matches[1].Trim(); continue }
        if ($current -eq $Section -and $line -match "^\s*$Key\s*=") { return $true }
    }
    return $false
}

# 1. Elevation, the exe, Python
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail "run this from an elevated PowerShell (Run as administrator)"
}
. (Join-Path $PSScriptRoot "ServiceLogonRight.ps1")
if (-not (Test-Path $Exe)) { Fail "tokenplace-gpuhost.exe not found at $Exe (use -Exe)" }
$Exe = (Resolve-Path $Exe).Path
if (-not (Test-Path $Checkout)) { Fail "checkout $Checkout does not exist" }
$Checkout = (Resolve-Path $Checkout).Path
if (-not (Test-Path (Join-Path $Checkout "server.py"))) { Fail "$Checkout has no server.py" }
& $Exe --version
if ($LASTEXITCODE -ne 0) { Fail "$Exe --version failed" }

$target = Join-Path $InstallDir "tokenplace-gpuhost.exe"
$ini = Join-Path $InstallDir "gpuhost.ini"
$stateFile = Join-Path $InstallDir "install-state.json"
$logDir = Join-Path $InstallDir "logs"
$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
$upgrade = $null -ne $existing
$prior = $null
if (Test-Path $stateFile) { $prior = Get-Content -Raw $stateFile | ConvertFrom-Json }

# The account: on an upgrade, the one the service runs as.
if ($upgrade) {
    if (-not (Test-Path $target)) {
        Fail "service $ServiceName exists but $target does not: installed elsewhere (-InstallDir) or by hand; remove it with uninstall.ps1 -InstallDir ... or sc.exe delete $ServiceName"
    }
    $startName = (Get-CimInstance Win32_Service -Filter "Name='$ServiceName'").StartName
    switch -Regex ($startName) {
        '^LocalSystem$' { $kind = "LocalSystem"; $acct = "LocalSystem" }
        '^NT AUTHORITY\\LocalService$' { $kind = "LocalService"; $acct = "NT AUTHORITY\LocalService" }
        '^NT SERVICE\\' { $kind = "Virtual"; $acct = $startName }
        default { $kind = "User"; $acct = $startName }
    }
    if ($PSBoundParameters.ContainsKey("Account") -and $Account -ne $kind) {
        Fail "$ServiceName runs as $startName; to change the account run uninstall.ps1 (keeps gpuhost.ini and logs), then install.ps1 -Account $Account"
    }
    $Account = $kind
    Write-Host "upgrading $ServiceName in place (runs as $acct)"
} else {
    switch ($Account) {
        "LocalSystem" { $acct = "LocalSystem" }
        "LocalService" { $acct = "NT AUTHORITY\LocalService" }
        "Virtual" { $acct = "NT SERVICE\$ServiceName" }
        "User" {
            if ($Credential) { $UserName = $Credential.UserName }
            if (-not $UserName) { Fail "-Account User needs -UserName DOMAIN\name (or -Credential)" }
            $acct = $UserName
        }
    }
}

$venv = Join-Path $Checkout ".venv"
$venvPython = Join-Path $venv "Scripts\python.exe"
if (-not (Test-Path $venvPython)) {
    Step "creating $venv with py -$PythonVersion"
    & py "-$PythonVersion" --version
    if ($LASTEXITCODE -ne 0) { Fail "Python $PythonVersion not found by the py launcher; install it from python.org (for all users)" }
    & py "-$PythonVersion" -m venv $venv
    if ($LASTEXITCODE -ne 0) { Fail "venv creation failed" }
}

# 2. llama_cpp_python and pip: decided now, run once an upgrade has stopped the service
$helper = Join-Path $PSScriptRoot "llamacpp_state.py"
function Get-LlamaState([string]$Requirements, [string]$Rest) {
    $helperArgs = @($helper, $Requirements)
    if ($Rest) { $helperArgs += @("--rest", $Rest) }
    $out = & $venvPython @helperArgs
    if ($LASTEXITCODE -ne 0) { Fail "$helper failed" }
    return ($out | Select-Object -Last 1 | ConvertFrom-Json)
}
function Format-Offload($llama) {
    if ($null -ne $llama.gpu_offload) { return "$($llama.gpu_offload)" }
    return "unknown ($($llama.import_error))"
}
function Test-NvidiaGpu {
    @(Get-CimInstance Win32_VideoController | Where-Object { $_.Name -match 'NVIDIA' }).Count -gt 0
}
function Assert-CudaBuildTools {
    $vswhere = Join-Path ${env:ProgramFiles(x86)} "Microsoft Visual Studio\Installer\vswhere.exe"
    $vc = $null
    if (Test-Path $vswhere) {
        $vc = & $vswhere -latest -products * -requires Microsoft.VisualStudio.Component.VC.Tools.x86.x64 -property installationPath
    }
    if (-not $vc) {
        Fail "-CudaBuild needs the Visual Studio Build Tools with 'Desktop development with C++' (MSVC and the Windows SDK); see docs\gpuhost.md, step 4"
    }
    if (-not $env:CUDA_PATH -or -not (Test-Path (Join-Path $env:CUDA_PATH "bin\nvcc.exe"))) {
        Fail "-CudaBuild needs the CUDA Toolkit (CUDA_PATH\bin\nvcc.exe not found; install it after the Build Tools and open a new PowerShell)"
    }
    Write-Host "CUDA build tools: Visual Studio at $vc, CUDA at $env:CUDA_PATH"
}
function Invoke-CudaBuild([string]$Spec) {
    Step "building $Spec with CUDA (this takes 5-20 minutes)"
    $saved = @($env:CMAKE_ARGS, $env:FORCE_CMAKE)
    $env:CMAKE_ARGS = "-DGGML_CUDA=on"
    $env:FORCE_CMAKE = "1"
    try {
        # --no-cache-dir: a CPU wheel pip built earlier for the same version would be reused.
        & $venvPython -m pip install --force-reinstall --no-cache-dir --no-deps $Spec
        if ($LASTEXITCODE -ne 0) { Fail "the CUDA build of $Spec failed (see the compiler output above)" }
    } finally {
        $env:CMAKE_ARGS = $saved[0]
        $env:FORCE_CMAKE = $saved[1]
    }
}

# 3. pyvenv.cfg -> python3XY.dll, the relay and its token: checked before anything changes
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

# Decided before an upgrade stops the service: a refusal leaves it running.
$req = Join-Path $Checkout "config\requirements_server.txt"
$pipFile = $null
$rest = $null
$llamaCuda = $null
if (-not $SkipPip -and (Test-Path $req)) {
    $rest = [IO.Path]::GetTempFileName()
    $before = Get-LlamaState $req $rest
    if ($before.requirement) {
        $installedText = if ($before.installed) { "$($before.installed) (GPU offload: $(Format-Offload $before))" } else { "not installed" }
        Write-Host "llama_cpp_python: $($before.requirement) wanted, $installedText"
    }
    $pipFile = $req
    if (-not $before.requirement) {
        # Nothing to protect.
    } elseif ($before.satisfied -eq $true -and -not ($CudaBuild -and $before.gpu_offload -ne $true)) {
        Write-Host "keeping the installed llama_cpp_python $($before.installed): it satisfies the pin"
        $pipFile = $rest
    } elseif ($null -eq $before.satisfied -and $before.installed) {
        Write-Warning "$($before.requirement) is not an exact pin; keeping the installed llama_cpp_python $($before.installed)"
        $pipFile = $rest
    } elseif ($CudaBuild) {
        Assert-CudaBuildTools
        $llamaCuda = $before.requirement
        $pipFile = $rest
    } elseif ($before.installed -and $before.gpu_offload -eq $true) {
        Remove-Item -Force $rest
        Fail ("token.place now pins $($before.requirement), but the installed llama_cpp_python $($before.installed) is a GPU build: " +
            "a plain pip install would replace it with a CPU-only build. Nothing was changed. Run again with -CudaBuild (rebuilds the " +
            "pinned version with CUDA), or install the pinned version your own way and run with -SkipPip")
    }
}

# An upgrade stops the service first: pip cannot replace the DLLs of a
# running server.py, nor can the exe be swapped while it runs. The service
# stays stopped if a later step fails; the error says why.
if ($upgrade) {
    Step "stopping $ServiceName"
    & $target --config $ini stop
    $deadline = (Get-Date).AddSeconds(120)
    while ((Get-Service -Name $ServiceName).Status -ne "Stopped") {
        if ((Get-Date) -gt $deadline) { Fail "$ServiceName did not stop within 120 s" }
        Start-Sleep -Milliseconds 500
    }
}

if ($pipFile) {
    try {
        if ($llamaCuda) { Invoke-CudaBuild $llamaCuda }
        Step "pip install -r $pipFile"
        & $venvPython -m pip install -r $pipFile
        if ($LASTEXITCODE -ne 0) {
            Fail ("pip install failed. llama_cpp_python has no wheel on PyPI for Windows: pip builds it from source, which needs the " +
                "Visual Studio Build Tools ('Desktop development with C++'); see docs\gpuhost.md, step 4")
        }
    } finally {
        Remove-Item -Force $rest -ErrorAction SilentlyContinue
    }
    $after = Get-LlamaState $req ""
    if ($after.installed) {
        $where = if ($after.location) { " at $($after.location)" } else { "" }
        Write-Host "installed: llama_cpp_python $($after.installed)$where, GPU offload: $(Format-Offload $after)"
        if ($after.gpu_offload -ne $true -and (Test-NvidiaGpu)) {
            Write-Warning ("this machine has an NVIDIA GPU but llama_cpp_python cannot offload to it: server.py will run the model on the CPU. " +
                "Run install.ps1 again with -CudaBuild (docs\gpuhost.md, step 4)")
        }
    }
} elseif ($upgrade -or $SkipPip) {
    # Still say what the service will run with.
    if (Test-Path $req) {
        $now = Get-LlamaState $req ""
        if ($now.installed) { Write-Host "llama_cpp_python $($now.installed), GPU offload: $(Format-Offload $now) (pip skipped)" }
    }
}

# 4. Swap the exe, write the config
New-Item -ItemType Directory -Force -Path $InstallDir, $logDir | Out-Null
if ($Exe -ne $target) {
    # The worker processes exit after the service: the old exe stays locked until then.
    $deadline = (Get-Date).AddSeconds(60)
    while ($true) {
        try { Copy-Item -Force $Exe $target; break }
        catch {
            if ((Get-Date) -gt $deadline) { Fail "could not replace $target (still in use?): $($_.Exception.Message)" }
            Start-Sleep -Milliseconds 500
        }
    }
}
& $target --version
Copy-Item -Force (Join-Path $PSScriptRoot "uninstall.ps1"), (Join-Path $PSScriptRoot "ServiceLogonRight.ps1") $InstallDir

# Does this exe know the data-directory key? `config` exits 78 on an unknown one.
# uninstall.ps1 -Purge deletes the data directory only if this script created it.
$DataDir = [IO.Path]::GetFullPath($DataDir)
$dataDirCreated = -not (Test-Path $DataDir)
if ($prior -and $prior.data_dir_created -and $prior.data_dir -eq $DataDir) { $dataDirCreated = $true }
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
$DataDir = (Resolve-Path $DataDir).Path
$probeIni = [IO.Path]::GetTempFileName()
"[$DataDirSection]`r`n$DataDirKey = $DataDir`r`n" | Set-Content -Encoding UTF8 -Path $probeIni
# Its complaint about an unknown key is expected: stderr is dropped, with
# errors not stopping the script meanwhile (Windows PowerShell turns a native
# command's redirected stderr into error records).
$eap = $ErrorActionPreference
$ErrorActionPreference = "Continue"
& $target --config $probeIni config 2>$null | Out-Null
$dataDirKnown = $LASTEXITCODE -eq 0
$ErrorActionPreference = $eap
Remove-Item -Force $probeIni
if (-not $dataDirKnown) {
    Write-Warning "this tokenplace-gpuhost.exe has no [$DataDirSection] $DataDirKey setting: $DataDir is prepared, but token.place keeps using its own default model directory"
}

if (-not $writeIni) {
    Write-Host "keeping existing $ini (use -Force to rewrite it)"
    if ($dataDirKnown -and -not (Test-IniKey -Path $ini -Section $DataDirSection -Key $DataDirKey)) {
        Write-Host "note: it has no data directory; add to it:  [$DataDirSection]  $DataDirKey = $DataDir"
    }
} else {
    Step "writing $ini"
    $dnsMode = if ($DnsName) { "warn" } else { "off" }
    # Quoted: the INI strips one pair of surrounding quotes, nothing else.
    $tokenLine = if ($RelayToken) { "token = `"$RelayToken`"" } else { "; token =" }
    $dataLines = if ($dataDirKnown) { "[$DataDirSection]`r`n$DataDirKey = $DataDir" } else { "; [$DataDirSection] $DataDirKey = $DataDir (not known to this exe)" }
    @"
; Written by install.ps1. See docs\gpuhost.md for every setting.
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

$dataLines

[checks]
dns = $dnsMode
firewall = warn
dns_wait = 60

[service]
name = $ServiceName
account = $acct

[log]
dir = $logDir

[firewall]
profiles = $Profiles
"@ | Set-Content -Encoding UTF8 -Path $ini
}

# What this run (and earlier ones) made, for uninstall.ps1.
$state = [ordered]@{
    service          = $ServiceName
    account          = $acct
    account_kind     = $Account
    account_sid      = $null
    logon_right_sid  = $null
    grants           = @()
    data_dir         = $DataDir
    data_dir_created = $dataDirCreated
    log_dir          = $logDir
    firewall_program = $null
}
if ($prior) {
    if ($prior.logon_right_sid) { $state.logon_right_sid = $prior.logon_right_sid }
    if ($prior.grants) { $state.grants = @($prior.grants) }
    if ($prior.firewall_program) { $state.firewall_program = $prior.firewall_program }
}
function Save-State { $state | ConvertTo-Json -Depth 4 | Set-Content -Encoding UTF8 -Path $stateFile }
Save-State

# 5. Service (a new install only: an upgrade keeps the registration)
if (-not $upgrade) {
    $installArgs = @("--config", $ini, "install")
    if ($Account -eq "User") {
        if (-not $Credential) { $Credential = Get-Credential -UserName $UserName -Message "Password of $UserName (the service logs on as it)" }
        $sid = Resolve-AccountSid $UserName
        if (Test-ServiceLogonRight $sid) {
            Write-Host "$UserName already has the right to log on as a service"
        } else {
            Step "granting $UserName the right to log on as a service"
            Grant-ServiceLogonRight $sid
            $state.logon_right_sid = $sid
            Save-State
        }
        $installArgs += @("--account", $UserName, "--password", $Credential.GetNetworkCredential().Password)
    }
    Step "registering the service"
    & $target @installArgs
    if ($LASTEXITCODE -ne 0) {
        if ($state.logon_right_sid) { Revoke-ServiceLogonRight $state.logon_right_sid; $state.logon_right_sid = $null; Save-State }
        Fail "service registration failed (see above)"
    }
}

# 6. Access for the service account. After the service exists, so that
# NT SERVICE\<name> resolves; recorded by SID, which uninstall.ps1 can use
# after the service is gone.
if ($Account -ne "LocalSystem") {
    $sid = Resolve-AccountSid $acct
    $state.account_sid = $sid
    $wanted = @(
        @{ path = $Checkout; rights = "(OI)(CI)RX" },
        @{ path = $home_; rights = "(OI)(CI)RX" },
        @{ path = $logDir; rights = "(OI)(CI)M" },
        @{ path = $DataDir; rights = "(OI)(CI)M" }
    )
    foreach ($g in $wanted) {
        Step "granting $acct $($g.rights) on $($g.path)"
        # Inherited by everything below; no /T, so one entry to take back.
        & icacls $g.path /grant "*${sid}:$($g.rights)" /Q | Out-Null
        if ($LASTEXITCODE -ne 0) { Fail "icacls could not grant $acct access to $($g.path)" }
        if (-not ($state.grants | Where-Object { $_.path -eq $g.path -and $_.sid -eq $sid })) {
            $state.grants = @($state.grants) + @([pscustomobject]@{ path = $g.path; sid = $sid })
        }
    }
    Save-State
}

# gpuhost.ini may hold the relay token: Administrators and SYSTEM full
# control, the service account read, nobody else (inheritance cut).
Step "restricting $ini to Administrators, SYSTEM and $acct"
$acl = New-Object System.Security.AccessControl.FileSecurity
$acl.SetAccessRuleProtection($true, $false)
$admins = New-Object System.Security.Principal.SecurityIdentifier("S-1-5-32-544")
$system = New-Object System.Security.Principal.SecurityIdentifier("S-1-5-18")
foreach ($s in @($admins, $system)) {
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($s, "FullControl", "Allow")))
}
if ($Account -ne "LocalSystem") {
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(
                (New-Object System.Security.Principal.SecurityIdentifier($state.account_sid)), "Read", "Allow")))
}
Set-Acl -Path $ini -AclObject $acl

# 7. Firewall: one rule for this exe (an upgrade replaces it, `add` would duplicate it)
if (-not $NoFirewall) {
    if ($upgrade) { & $target --config $ini firewall remove | Out-Null }
    Step "adding the inbound firewall rule (profiles $Profiles)"
    & $target --config $ini firewall add
    if ($LASTEXITCODE -ne 0) { Write-Warning "firewall rule not added; see the output above" }
    else { $state.firewall_program = $target; Save-State }
}

# 8. Check and start
Step "pre-flight check"
& $target --config $ini check
$checkRc = $LASTEXITCODE
if ($checkRc -eq 2 -and -not $Force) { Fail "a check failed (see above); fix it and run: Start-Service $ServiceName" }
if ($NoStart) { Write-Host "installed; start it with: Start-Service $ServiceName"; exit 0 }
Step "starting $ServiceName"
& $target --config $ini start
if ($LASTEXITCODE -ne 0) { Fail "the service did not start; see $(Join-Path $logDir 'gpuhost.log') and the Application event log" }
Get-Service $ServiceName | Format-Table -AutoSize -Property @("Status", "Name", "DisplayName")
& $target --config $ini status
Write-Host "logs: $logDir"
Write-Host "uninstall: powershell -ExecutionPolicy Bypass -File `"$(Join-Path $InstallDir 'uninstall.ps1')`" [-Purge]"
